"""API discovery: which optional APIs the cluster serves (HPA version, KEDA, Gateway API).

``capabilities`` reads the server's group list (one request, cached briefly so that an API
installed later is found without a restart); ``from_groups`` is the pure decision.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kubernetes import client

HPA_VERSIONS = ("autoscaling/v2", "autoscaling/v2beta2")
KEDA_GROUP = "keda.sh"
GATEWAY_GROUP = "gateway.networking.k8s.io"
CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class Capabilities:
    """Optional APIs found on the server (``None``: that API is missing)."""

    hpa_api_version: str | None
    keda_api_version: str | None
    gateway_api_version: str | None


def from_groups(groups: Mapping[str, Sequence[str]]) -> Capabilities:
    """Decide from ``{group: [version, ...]}`` (the core group is not needed).

    The HPA version is the newest of ``autoscaling/v2`` and ``v2beta2``; KEDA and the
    Gateway API are taken at their preferred (first listed) version.
    """
    autoscaling = set(groups.get("autoscaling", ()))
    hpa = next((v for v in HPA_VERSIONS if v.split("/")[1] in autoscaling), None)

    def preferred(group: str) -> str | None:
        versions = list(groups.get(group, ()))
        return f"{group}/{versions[0]}" if versions else None

    return Capabilities(hpa_api_version=hpa, keda_api_version=preferred(KEDA_GROUP),
                        gateway_api_version=preferred(GATEWAY_GROUP))


def server_groups(api: client.ApiClient) -> dict[str, list[str]]:
    """``{group: [version, ...]}`` of the API server, preferred version first."""
    result: dict[str, list[str]] = {}
    for group in client.ApisApi(api).get_api_versions(_request_timeout=10).groups:
        preferred = group.preferred_version.version if group.preferred_version else None
        versions = [v.version for v in group.versions]
        result[group.name] = sorted(versions, key=lambda v: v != preferred)
    return result


_cache: dict[int, tuple[float, Capabilities]] = {}
_cache_lock = threading.Lock()


def capabilities(api: client.ApiClient, max_age: float = CACHE_SECONDS) -> Capabilities:
    """The cluster's optional APIs, re-read at most every ``max_age`` seconds."""
    with _cache_lock:
        cached = _cache.get(id(api))
        if cached is not None and time.monotonic() - cached[0] < max_age:
            return cached[1]
    found = from_groups(server_groups(api))
    with _cache_lock:
        _cache[id(api)] = (time.monotonic(), found)
    return found
