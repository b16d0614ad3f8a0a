"""The one generic apply: carry out a kind's Plan against the API server.

Order: the object patch, the desired children (server-side apply; skipped when the child
already carries the hash of the same manifest), the prune of undesired children of the
owned kinds, other objects the plan applies, one status patch (a merge patch computed
against the status as read, so fields the plan left out are cleared), then the Events.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arclight.clients.kube import Kube
from arclight.core.conditions import transitions
from arclight.core.plan import Child, Kind, Observed, Plan, manifest_hash
from arclight.framework import metrics
from arclight.framework.index import ChildIndex, OwnerKey

HASH_ANNOTATION = "arclight.dev/desired-hash"


def with_hash(manifest: Mapping[str, Any], digest: str | None = None) -> dict[str, Any]:
    """``manifest`` annotated with its hash (``digest``, when already known)."""
    meta = dict(manifest["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}),
                           HASH_ANNOTATION: digest or manifest_hash(manifest)}
    return {**manifest, "metadata": meta}


def merge_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``old`` into ``new``."""
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if value is None and key not in old:
            continue  # absent and null are the same to a merge patch
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            inner = merge_diff(before, value)
            if inner:
                patch[key] = inner
        elif key not in old or before != value:
            patch[key] = value
    return patch


def _count(verb: str, kind: str) -> None:
    metrics.API_WRITES.labels(verb, kind).inc()


def apply_one(kube: Kube, child: Child, seen: Mapping[str, Any] | None, force: bool = False
              ) -> dict[str, Any] | None:
    """Bring one object to what ``child`` wants, given what was seen of it; the API server's
    answer when something was written. ``force`` re-applies even an unchanged manifest
    (the first pass after a start repairs what others changed meanwhile)."""
    if child.create_only:
        if seen is None:
            _count("create", child.kind)
            return kube.create(child.manifest)
        if child.patch:
            _count("patch", child.kind)
            return kube.merge_patch(seen, child.patch)
        return None
    applied_hash = ((seen or {}).get("metadata", {}).get("annotations") or {}).get(
        HASH_ANNOTATION)
    if not force and seen is not None and applied_hash == child.digest:
        return None
    _count("apply", child.kind)
    return kube.apply(with_hash(child.manifest, child.digest))


def apply_children(kube: Kube, index: ChildIndex, owner: OwnerKey, observed: Observed,
                   children: list[Child], prune: tuple[str, ...], force: bool = False) -> None:
    """Create or apply each desired child, then delete owned children no longer desired."""
    desired: dict[str, set[str]] = {}
    for child in children:
        desired.setdefault(child.kind, set()).add(child.name)
        written = apply_one(kube, child, observed.child(child.kind, child.name), force)
        if written is not None:
            index.wrote(owner, written)
    for kind in prune:
        for name, seen in observed.of_kind(kind).items():
            if name not in desired.get(kind, set()):
                _count("delete", kind)
                kube.delete(seen["apiVersion"], kind, name, seen["metadata"].get("namespace"))
                index.deleted(owner, kind, name)


def apply_plan(kube: Kube, index: ChildIndex, kind: Kind[Any], owner: OwnerKey,
               observed: Observed, plan: Plan, force: bool = False) -> dict[str, Any] | None:
    """Carry out ``plan``; returns the API server's answer to the object's own last write
    (None when the object was not written). ``force`` re-applies unchanged children too
    (see ``apply_one``)."""
    obj = observed.obj
    written: dict[str, Any] | None = None
    if plan.object_patch:
        _count("patch", kind.kind)
        written = kube.merge_patch(obj, plan.object_patch)
    apply_children(kube, index, owner, observed, plan.children, plan.prune, force)
    for other in plan.applies:
        seen = next((obj for ref, obj in observed.refs.items()
                     if (ref.kind, ref.name) == (other.kind, other.name)), None)
        apply_one(kube, other, seen)
    old_status = dict(obj.get("status") or {})
    diff = merge_diff(old_status, plan.status)
    if diff:
        _count("status", kind.kind)
        written = kube.merge_patch(obj, {"status": diff}, subresource="status")
        for cond in transitions(old_status.get("conditions") or [],
                                plan.status.get("conditions") or []):
            metrics.TRANSITIONS.labels(kind.kind, cond["type"], cond["status"],
                                       cond["reason"]).inc()
    for event in plan.events:
        _count("event", kind.kind)
        kube.emit_event(obj, event.reason, event.message,
                        "Warning" if event.warning else "Normal")
    return written
