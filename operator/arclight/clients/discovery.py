"""API discovery: which optional APIs the cluster serves (HPA version, KEDA, Gateway API,
Job suspension). One request for the group list and one for the version, cached briefly so
that an API installed later is found without a restart; the decision is
``arclight.core.facts.from_groups`` (pure)."""
from __future__ import annotations

import re
import threading
import time

from kubernetes import client

from arclight.core.facts import Capabilities, from_groups

CACHE_SECONDS = 60.0


def server_groups(api: client.ApiClient) -> dict[str, list[str]]:
    """``{group: [version, ...]}`` of the API server, preferred version first."""
    result: dict[str, list[str]] = {}
    for group in client.ApisApi(api).get_api_versions(_request_timeout=10).groups:
        preferred = group.preferred_version.version if group.preferred_version else None
        versions = [v.version for v in group.versions]
        result[group.name] = sorted(versions, key=lambda v: v != preferred)
    return result


def server_minor(api: client.ApiClient) -> int:
    """The server's Kubernetes minor version (``1.20.2`` -> 20)."""
    info = client.VersionApi(api).get_code(_request_timeout=10)
    match = re.match(r"\d+", str(info.minor))
    return int(match.group()) if match else 0


_cache: dict[int, tuple[float, Capabilities]] = {}
_cache_lock = threading.Lock()


def capabilities(api: client.ApiClient, max_age: float = CACHE_SECONDS) -> Capabilities:
    """The cluster's optional APIs, re-read at most every ``max_age`` seconds."""
    with _cache_lock:
        cached = _cache.get(id(api))
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
    found = from_groups(server_groups(api), server_minor(api))
    with _cache_lock:
        _cache[id(api)] = (time.monotonic(), found)
    return found
