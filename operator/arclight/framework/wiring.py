"""kopf wiring, generated from a kind's registration: watches feed the work queue.

Per kind: an event handler on the kind itself (queue its key, unless the event is the echo
of the operator's own status write); per child resource: a kopf index keyed by owner and an
event handler queuing the owner; per referenced resource: queue the objects that read it.
Only event handlers and indexes: kopf then writes nothing on the objects (no annotations,
no finalizers) and there are no per-object timers; time-based work is a queue requeue.
"""
from __future__ import annotations

from typing import Any

import kopf

from arclight.core.names import OWNER_KIND_LABEL
from arclight.core.plan import ChildKind, Kind
from arclight.framework.context import context
from arclight.framework.index import owner_key, slim

KINDS: dict[str, Kind[Any]] = {}
_watched: set[tuple[str, str, str]] = set()  # (role, group, plural) already wired
OWNED = {OWNER_KIND_LABEL: kopf.PRESENT}


def _selector(resource: ChildKind) -> dict[str, Any]:
    selector: dict[str, Any] = {"group": resource.group, "plural": resource.plural}
    if resource.version:
        selector["version"] = resource.version
    return selector


def _index_id(resource: ChildKind) -> str:
    return "arclight_index_" + "_".join(
        part for part in (resource.plural, resource.group.replace(".", "_")) if part)


def _queue_readers(ctx: Any, kind: str, namespace: str | None, name: str) -> None:
    for reader in ctx.references.readers((kind, namespace, name)):
        ctx.queue.add(reader, kind.lower() + "s")


def register(kind: Kind[Any]) -> Kind[Any]:
    """Register ``kind`` with kopf and the framework (idempotent per resource)."""
    KINDS[kind.kind] = kind
    own = ChildKind(kind.group, kind.version, kind.kind, kind.plural, prune=False)
    if _first("object", own):
        kopf.on.event(**_selector(own), id=f"arclight_{kind.plural}")(_on_object)
    for child in kind.children:
        _register_child(child)
    for watched in kind.watches:
        if _first("reference", watched):
            kopf.on.event(**_selector(watched), id=f"arclight_ref_{watched.plural}")(
                _on_referenced)
    return kind


def cluster_scoped() -> set[str]:
    """The registered kinds whose objects have no namespace."""
    return {name for name, kind in KINDS.items() if not kind.namespaced}


def _first(role: str, resource: ChildKind) -> bool:
    """True the first time ``resource`` is wired in ``role``."""
    key = (role, resource.group, resource.plural)
    if key in _watched:
        return False
    _watched.add(key)
    return True


def _register_child(child: ChildKind) -> None:
    if not _first("child", child):
        return

    def index(body: kopf.Body, **_: Any) -> dict[Any, Any] | None:
        owner = owner_key(body, cluster_scoped())
        return {owner: slim(body)} if owner else None

    kopf.index(**_selector(child), id=_index_id(child), labels=OWNED)(index)
    kopf.on.event(**_selector(child), id=f"arclight_child_{_index_id(child)}",
                  labels=OWNED)(_on_child)


async def _on_object(event: kopf.RawEvent, type: str | None, memo: kopf.Memo, **kwargs: Any
                     ) -> None:
    """The kind's own object changed (or was listed at start): keep it and queue a pass,
    unless it is the echo of the operator's own write."""
    ctx = context(memo)
    ctx.children.attach(kwargs)
    raw = event["object"]
    meta = raw.get("metadata") or {}
    key = (raw["kind"], meta.get("namespace"), meta["name"])
    if type == "DELETED":
        ctx.children.forget(key)
        ctx.objects.forget(key)
    elif ctx.objects.observed(key, raw):
        ctx.queue.add(key, "resync" if type is None else "event")


async def _on_child(body: kopf.Body, type: str | None, memo: kopf.Memo,
                    resource: kopf.Resource, **kwargs: Any) -> None:
    """A child changed (or was listed at start): queue its owner."""
    ctx = context(memo)
    ctx.children.attach(kwargs)
    owner = owner_key(body, cluster_scoped())
    if owner is not None and owner[0] in KINDS:
        ctx.queue.add(owner, "resync" if type is None else resource.plural)


async def _on_referenced(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """An object some owner reads changed: queue those owners."""
    ctx = context(memo)
    meta = body.get("metadata") or {}
    _queue_readers(ctx, body["kind"], meta.get("namespace"), meta["name"])
