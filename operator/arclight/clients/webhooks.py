"""Webhook delivery: one JSON POST per call, signed when a key is given (urllib3).

A POST succeeds when the receiver answers 2xx within :data:`TIMEOUT_S`; redirects are not
followed (a 3xx is a failure) and urllib3 does not retry (the caller's outbox does). A
failure comes back as a short reason that never holds the URL's userinfo, path or query
(webhook URLs carry their tokens there), nor anything the receiver answered.
"""
from __future__ import annotations

from urllib.parse import urlsplit

import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from arclight.metering.notifications import SIGNATURE_HEADER, signature

TIMEOUT_S = 5.0
USER_AGENT = "arclight"
MAX_REASON = 200
_POOL = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(TIMEOUT_S))


def post(url: str, body: bytes, signing_key: str | None, timestamp: int) -> str | None:
    """POST ``body`` (JSON) to ``url``, signed with ``signing_key`` at ``timestamp``; None
    when it was answered 2xx, else why not."""
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if signing_key:
        headers[SIGNATURE_HEADER] = signature(signing_key, timestamp, body)
    try:
        response = _POOL.request("POST", url, body=body, headers=headers, redirect=False,
                                 preload_content=False)
    except (HTTPError, ValueError) as exc:  # a URL urllib3 cannot parse is a ValueError
        return _redact(_reason(exc), url)
    status = response.status
    response.close()  # the answer is not read: nothing of it is kept or logged
    response.release_conn()
    return None if 200 <= status < 300 else f"HTTP {status}"


def _reason(exc: Exception) -> str:
    cause = exc.__cause__
    detail = (cause.strerror or str(cause)) if isinstance(cause, OSError) else None
    if isinstance(exc, ValueError):  # its message may quote the URL, or pieces of it
        return "not a valid URL"
    if isinstance(exc, NewConnectionError):  # before timeouts: urllib3 2 derives it from them
        return f"cannot connect: {detail or 'connection failed'}"
    if isinstance(exc, Urllib3Timeout):
        return f"no answer within {TIMEOUT_S:g} s"
    if isinstance(exc, SSLError):
        return f"TLS error: {detail or exc}"
    return f"{type(exc).__name__}: {exc}"


def _redact(reason: str, url: str) -> str:
    """``reason`` without ``url``'s userinfo, path, query or fragment, shortened."""
    try:
        parts = urlsplit(url)
        secret = [url, parts.path if parts.path not in ("", "/") else "", parts.query,
                  parts.fragment, parts.netloc.rpartition("@")[0]]
    except ValueError:
        secret = [url]
    for piece in sorted(filter(None, secret), key=len, reverse=True):
        reason = reason.replace(piece, "***")
    return reason[:MAX_REASON]
