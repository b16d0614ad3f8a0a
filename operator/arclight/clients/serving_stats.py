"""Reading a model server's request count: ``GET http://<pod IP>:8080/v1/stats`` (urllib3).

The server counts the requests it answered since its container started (``requests``); a
replica that cannot be read this round (starting, stopping, unreachable) is read the next.
"""
from __future__ import annotations

import json

import urllib3
from urllib3.exceptions import HTTPError

TIMEOUT_S = 2.0
_POOL = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(TIMEOUT_S), maxsize=8)


def requests_served(pod_ip: str, port: int) -> int | None:
    """The server's count of requests answered, or None when it cannot be read now."""
    try:
        response = _POOL.request("GET", f"http://{pod_ip}:{port}/v1/stats", redirect=False)
    except (HTTPError, ValueError):
        return None
    if response.status != 200:
        return None
    try:
        count = json.loads(response.data)["requests"]
    except (ValueError, KeyError, TypeError):
        return None
    return count if isinstance(count, int) and count >= 0 else None
