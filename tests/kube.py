"""Polling helpers for tests against a real cluster: bounded in time, never bare sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A waited-for state did not appear in time."""


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.5,
    what: str = "condition",
    ignore: tuple[type[BaseException], ...] = (Exception,),
) -> T:
    """Poll ``predicate`` until it returns a truthy value and return that value.

    Exceptions of the types in ``ignore`` count as "not yet" (others propagate at once).
    Fails with ``what`` and the last value seen (or the last exception raised) after
    ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except ignore as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def find_condition(obj: Any, cond_type: str) -> dict | None:
    """The condition of type ``cond_type`` in a Kubernetes object's ``status.conditions``.

    ``obj`` is a dict (custom objects) or a kubernetes-client model.
    """
    if not isinstance(obj, dict):
        obj = obj.to_dict()
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return cond
    return None


def wait_condition(
    read: Callable[[], Any],
    cond_type: str,
    status: str = "True",
    timeout: float = 60,
    interval: float = 0.5,
    reason: str | None = None,
) -> dict:
    """Poll ``read()`` (returning the object) until condition ``cond_type`` has ``status``
    (and ``reason``, if given); return that condition."""

    def check() -> dict | None:
        cond = find_condition(read(), cond_type)
        if (
            cond
            and cond.get("status") == status
            and (reason is None or cond.get("reason") == reason)
        ):
            return cond
        return None

    want = f"condition {cond_type}={status}" + (f" reason={reason}" if reason else "")
    return wait_until(check, timeout, interval, what=want)


#: A node selector no node matches. Controller tests play the kubelet themselves (they write pod
#: status), so the pods of their runs must never start, also when the full cluster is up.
NO_NODE_SELECTOR = {"arclight.dev/controller-test": "no-node"}
