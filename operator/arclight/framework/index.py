"""Children by owner: kopf indexes fed by the watch streams, plus the pass's own writes.

Every owned child carries the owner labels; a kopf index per child resource keys a slim copy
of it by ``(owner kind, owner namespace, owner name)``. kopf starts no handler before every
index has its initial listing, so a restarted operator never mistakes "not listed yet" for
"missing". The watch lags behind the operator's own writes by a few milliseconds; the
overlay of recent writes (and deletions) bridges that gap so that the next pass neither
re-applies nor re-creates what it has just written.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from arclight.core.names import OWNER_KIND_LABEL, OWNER_NAME_LABEL

Obj = dict[str, Any]
OwnerKey = tuple[str, str | None, str]
#: How long a written object overrides the index before the watch is assumed to have it.
OVERLAY_SECONDS = 30.0
_KEEP_ANNOTATION_PREFIX = "arclight.dev/"


def owner_key(obj: Mapping[str, Any], cluster_scoped: Collection[str] = ()) -> OwnerKey | None:
    """The owner a child's labels name, or None for an object without them. Owners of the
    ``cluster_scoped`` kinds have no namespace, wherever their children live."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    kind, name = labels.get(OWNER_KIND_LABEL), labels.get(OWNER_NAME_LABEL)
    if not kind or not name:
        return None
    return kind, None if kind in cluster_scoped else meta.get("namespace"), name


def slim(obj: Mapping[str, Any]) -> Obj:
    """What observe needs of a child: metadata without managedFields, our annotations only,
    and no pod templates or ConfigMap payloads but the report channel's."""
    meta = dict(obj.get("metadata") or {})
    meta.pop("managedFields", None)
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items()
                           if k.startswith(_KEEP_ANNOTATION_PREFIX)}
    result: Obj = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                   "metadata": meta}
    spec = obj.get("spec")
    if isinstance(spec, Mapping):
        result["spec"] = {k: v for k, v in spec.items() if k != "template"}
    if "status" in obj:
        result["status"] = obj["status"]
    if obj.get("kind") == "ConfigMap" and (meta.get("labels") or {}).get(
            "app.kubernetes.io/component") == "report":
        result["data"] = dict(obj.get("data") or {})
    return result


def version(obj: Mapping[str, Any] | None) -> int:
    """An object's resourceVersion as a number (0 when it has none); etcd revisions grow."""
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


class ChildIndex:
    """Read side of the kopf indexes (one per child resource) with the write overlay."""

    def __init__(self) -> None:
        self._indexes: dict[str, Mapping[OwnerKey, Iterable[Obj]]] = {}
        self._overlay: dict[OwnerKey, dict[tuple[str, str], tuple[float, int, Obj | None]]] = {}
        self._lock = threading.Lock()

    def attach(self, indexes: Mapping[str, Any]) -> None:
        """Take the kopf ``Index`` objects (handler kwargs named ``arclight_index_*``)."""
        for name, index in indexes.items():
            if name.startswith("arclight_index_") and name not in self._indexes:
                self._indexes[name] = index

    def children(self, owner: OwnerKey) -> dict[str, dict[str, Obj]]:
        """``{kind: {name: child}}`` of ``owner``, the overlay applied."""
        found: dict[str, dict[str, Obj]] = {}
        for index in list(self._indexes.values()):
            for child in _read(index, owner):
                found.setdefault(child["kind"], {})[child["metadata"]["name"]] = child
        now = time.monotonic()
        with self._lock:
            overlay = self._overlay.get(owner) or {}
            for (kind, name), (written, wanted, obj) in list(overlay.items()):
                seen = found.get(kind, {}).get(name)
                caught_up = (obj is None and seen is None) or (
                    obj is not None and seen is not None and version(seen) >= wanted)
                if caught_up or now - written > OVERLAY_SECONDS:
                    del overlay[(kind, name)]
                elif obj is None:
                    found.get(kind, {}).pop(name, None)
                else:
                    found.setdefault(kind, {})[name] = obj
            if not overlay:
                self._overlay.pop(owner, None)
        return found

    def all_of(self, plural: str, group: str = "") -> list[Obj]:
        """Every indexed child of the resource ``plural`` (all owners; no overlay)."""
        name = "arclight_index_" + "_".join(p for p in (plural, group.replace(".", "_")) if p)
        index = self._indexes.get(name)
        if index is None:
            return []
        owners: list[OwnerKey] = []
        for _ in range(5):
            try:
                owners = list(index)
                break
            except RuntimeError:  # changed size during iteration (kopf writes on its loop)
                continue
        return [child for owner in owners for child in _read(index, owner)]

    def wrote(self, owner: OwnerKey, obj: Mapping[str, Any]) -> None:
        """Record an object this pass created or applied (the API server's answer)."""
        self._put(owner, obj["kind"], obj["metadata"]["name"], version(obj), slim(obj))

    def deleted(self, owner: OwnerKey, kind: str, name: str) -> None:
        """Record a child this pass deleted."""
        self._put(owner, kind, name, 0, None)

    def _put(self, owner: OwnerKey, kind: str, name: str, version: int, obj: Obj | None
             ) -> None:
        with self._lock:
            self._overlay.setdefault(owner, {})[(kind, name)] = (time.monotonic(), version, obj)

    def forget(self, owner: OwnerKey) -> None:
        """The owner is gone: drop its overlay."""
        with self._lock:
            self._overlay.pop(owner, None)


def _read(index: Mapping[OwnerKey, Iterable[Obj]], owner: OwnerKey) -> list[Obj]:
    """The index's values for ``owner`` (retried if kopf changes them while we copy)."""
    for _ in range(5):
        try:
            store = index.get(owner)
            return list(store) if store is not None else []
        except RuntimeError:  # changed size during iteration (kopf writes on its loop)
            continue
    return []
