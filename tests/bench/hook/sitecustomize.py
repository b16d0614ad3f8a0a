"""Counts the API requests of this process (the operator under bench), by verb and resource.

Loaded only when tests/bench/operator_load.py puts this folder first on the operator's
PYTHONPATH; active only with ``ARCLIGHT_BENCH_COUNTS=<file>``. It wraps urllib3 (the kubernetes
client) and aiohttp (kopf) and rewrites ``<file>`` (JSON: {"VERB resource[/sub] code": n})
every 0.5 s. Unlike the API server's /metrics this sees only this process, so other clients of
a shared cluster do not add to it.
"""
from __future__ import annotations

import collections
import json
import os
import re
import threading
import time

_PATH = os.environ.get("ARCLIGHT_BENCH_COUNTS")
_RESOURCE = re.compile(r"^/(?:api/v1|apis/[^/]+/[^/]+)(?:/namespaces/[^/]+)?/([^/?]+)"
                       r"(?:/([^/?]+))?(?:/([^/?]+))?")
_counts: collections.Counter = collections.Counter()
_lock = threading.Lock()


def _key(method: str, url: str, headers: object) -> str:
    path, _, query = url.partition("?")
    if "://" in path:
        path = "/" + path.split("://", 1)[1].split("/", 1)[-1]
    m = _RESOURCE.match(path)
    if not m:
        return f"{method.upper()} {path}"
    resource, name, sub = m.groups()
    verb = method.upper()
    if verb == "GET":
        verb = "WATCH" if "watch=true" in query.lower() or "watch=1" in query else (
            "GET" if name else "LIST")
    content_type = str((dict(headers or {})).get("Content-Type", ""))
    if verb == "PATCH" and "apply-patch" in content_type:
        verb = "APPLY"
    return f"{verb} {resource}{'/' + sub if sub else ''}"


def _count(key: str, status: object) -> None:
    with _lock:
        _counts[f"{key} {status}"] += 1


def _dump_forever() -> None:
    while True:
        time.sleep(0.5)
        with _lock:
            text = json.dumps(dict(_counts))
        tmp = f"{_PATH}.tmp"
        with open(tmp, "w") as fh:
            fh.write(text)
        os.replace(tmp, _PATH)


def _install() -> None:
    import aiohttp
    import urllib3.connectionpool

    urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def counted_urlopen(self, method, url, *args, **kwargs):
        key = _key(method, url, kwargs.get("headers"))
        resp = urlopen(self, method, url, *args, **kwargs)
        _count(key, getattr(resp, "status", "?"))
        return resp

    request = aiohttp.ClientSession._request

    async def counted_request(self, method, str_or_url, *args, **kwargs):
        url = str(str_or_url)
        params = kwargs.get("params")
        if params:
            url += "?" + "&".join(f"{k}={v}" for k, v in dict(params).items())
        key = _key(method, url, kwargs.get("headers"))
        resp = await request(self, method, str_or_url, *args, **kwargs)
        _count(key, resp.status)
        return resp

    urllib3.connectionpool.HTTPConnectionPool.urlopen = counted_urlopen
    aiohttp.ClientSession._request = counted_request
    threading.Thread(target=_dump_forever, name="bench-counts", daemon=True).start()


if _PATH:
    _install()
