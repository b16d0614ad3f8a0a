"""The newest known version of every owner object, so that a pass reads no object twice.

Fed by the kind's watch (kopf's event handler) and by the API server's answers to the
operator's own writes. A pass takes the object from here instead of a fresh GET (the
informer-cache pattern of client-go controllers): the watch delivers every later change, and
each change queues another pass, so a pass that saw a slightly old object is followed by one
that sees the new one. The watch echo of the operator's own write, and any event older than
what is known, is not news and queues nothing.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from arclight.framework.index import OwnerKey, version

Obj = dict[str, Any]


class LatestObjects:
    """Thread-safe map of owner key to its newest known object."""

    def __init__(self) -> None:
        self._objects: dict[OwnerKey, Obj] = {}
        self._lock = threading.Lock()

    def observed(self, key: OwnerKey, obj: Mapping[str, Any]) -> bool:
        """Record ``obj`` from the watch; True when it is news (a pass should follow)."""
        with self._lock:
            known = self._objects.get(key)
            if known is not None and version(known) >= version(obj):
                return False  # our own write's echo, a relisting, or older than we know
            self._objects[key] = _lean(obj)
            return True

    def wrote(self, key: OwnerKey, obj: Mapping[str, Any]) -> None:
        """Record the API server's answer to the operator's own write of the object."""
        with self._lock:
            known = self._objects.get(key)
            if known is None or version(known) <= version(obj):
                self._objects[key] = _lean(obj)

    def get(self, key: OwnerKey) -> Obj | None:
        """The newest known version of ``key`` (None when never seen or gone)."""
        with self._lock:
            return self._objects.get(key)

    def forget(self, key: OwnerKey) -> None:
        """The object is gone."""
        with self._lock:
            self._objects.pop(key, None)

    def of_kind(self, kind: str) -> list[Obj]:
        """The newest known objects of ``kind``."""
        with self._lock:
            return [obj for key, obj in self._objects.items() if key[0] == kind]

    def __len__(self) -> int:
        with self._lock:
            return len(self._objects)


def _lean(obj: Mapping[str, Any]) -> Obj:
    """A shallow copy without ``managedFields`` (most of an object's size; no pass reads it)."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    return {**obj, "metadata": meta}
