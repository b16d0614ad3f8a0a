"""The frame every kind's reconcile runs in: one pass at a time per object, the object read
fresh (nothing to do once it is gone or being deleted), metrics, and invalid input turned into
kopf's permanent error (it is already a condition and an Event; retrying cannot fix it)."""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

import kopf

from arclight.framework import metrics
from arclight.clients.kube import Kube
from arclight.core.conditions import set_condition
from arclight.core.errors import InvalidSpec

_locks: collections.defaultdict[tuple[str, str, str], threading.Lock] = collections.defaultdict(
    threading.Lock)


def reconcile_object(kube: Kube, api_version: str, kind: str, namespace: str, name: str,
                     trigger: str, reconcile: Callable[[dict[str, Any]], None]) -> None:
    """Read ``kind`` ``namespace/name`` and call ``reconcile(obj)`` under the object's lock."""
    metrics.RECONCILES.labels(kind, trigger).inc()
    started = time.monotonic()
    with _locks[(kind, namespace, name)]:
        try:
            obj = kube.get(api_version, kind, name, namespace)
            if obj is None or obj["metadata"].get("deletionTimestamp"):
                return
            reconcile(obj)
        except InvalidSpec as exc:
            metrics.RECONCILE_ERRORS.labels(kind, "InvalidSpec").inc()
            raise kopf.PermanentError(str(exc)) from None
        except Exception as exc:
            metrics.RECONCILE_ERRORS.labels(kind, type(exc).__name__).inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - started)


class StatusPass:
    """What one reconcile pass of any kind shares: the status as read and the status being
    written, conditions stamped with the object's generation, and Events queued for the end."""

    def __init__(self, kube: Kube, settings: Any, obj: dict[str, Any]):
        self.kube, self.settings, self.obj = kube, settings, obj
        self.name = obj["metadata"]["name"]
        self.namespace = obj["metadata"]["namespace"]
        self.generation = obj["metadata"].get("generation")
        self.old_status: dict[str, Any] = dict(obj.get("status") or {})
        self.status: dict[str, Any] = {**self.old_status,
                                       "conditions": list(self.old_status.get("conditions") or [])}
        self.events: list[tuple[str, str, str]] = []

    def condition(self, type_: str, status: str, reason: str, message: str) -> None:
        """Set a condition (lastTransitionTime changes only when its status flips)."""
        self.status["conditions"] = set_condition(self.status["conditions"], type_, status,
                                                  reason, message, self.generation)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """Queue a Kubernetes Event about the object."""
        self.events.append(("Warning" if warning else "Normal", reason, message))
