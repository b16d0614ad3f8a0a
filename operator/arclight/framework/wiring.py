"""Wiring, generated from a kind's registration: watches feed the work queue.

Per kind: a kopf event handler on the kind itself (keep the object, queue its key, unless
the event is the echo of the operator's own write); per referenced resource: a kopf event
handler queuing the objects that read it. Children are watched by the frame's own informers
(``framework/informer.py``: server-side label selectors, one cheap update per event), built
at startup for every child resource, in each watched namespace or cluster-wide. kopf then
writes nothing on the objects (no annotations, no finalizers) and there are no per-object
timers; time-based work is a queue requeue.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from arclight.clients.kube import Kube
from arclight.core.names import OWNER_KIND_LABEL
from arclight.core.plan import ChildKind, Kind
from arclight.framework.context import OperatorContext, context
from arclight.framework.index import OwnerKey, owner_key, slim
from arclight.framework.informer import Informer

log = logging.getLogger(__name__)
KINDS: dict[str, Kind[Any]] = {}
CHILD_KINDS: list[ChildKind] = []  # every child resource of the registered kinds, once
_watched: set[tuple[str, str, str]] = set()  # (role, group, plural) already wired


def _selector(resource: ChildKind) -> dict[str, Any]:
    selector: dict[str, Any] = {"group": resource.group, "plural": resource.plural}
    if resource.version:
        selector["version"] = resource.version
    return selector


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
    if _first("child", child):
        CHILD_KINDS.append(child)


def build_informers(ctx: OperatorContext, kube: Kube, namespaces: Sequence[str],
                    served: Mapping[str, list[str]]) -> list[Informer]:
    """An informer per child resource and watched namespace (``()``: cluster-wide), reading
    through ``kube``, attached to the child index and queuing owners; ``served`` is discovery's
    ``{group: versions}``, which picks the version of a child registered without one. A
    resource the cluster does not serve is skipped (logged)."""
    informers = []
    scoped = cluster_scoped()

    def changed(owner: OwnerKey, trigger: str) -> None:
        if owner[0] in KINDS:
            ctx.queue.add(owner, trigger)
    for child in CHILD_KINDS:
        version = child.version or next(iter(served.get(child.group) or []), "")
        if not version:
            log.info("%s (%s) is not served: not watched", child.plural, child.group)
            continue
        api_version = f"{child.group}/{version}" if child.group else version
        for namespace in namespaces or (None,):
            informers.append(Informer(
                kube, api_version, child.kind, namespace, {"labelSelector": OWNER_KIND_LABEL},
                keyfn=lambda obj: owner_key(obj, scoped), transform=slim, on_change=changed,
                trigger=child.plural))
    ctx.children.attach({i.name: i for i in informers})
    return informers


async def _on_object(event: kopf.RawEvent, type: str | None, memo: kopf.Memo, **_: Any
                     ) -> None:
    """The kind's own object changed (or was listed at start): keep it and queue a pass,
    unless it is the echo of the operator's own write."""
    ctx = context(memo)
    raw = event["object"]
    meta = raw.get("metadata") or {}
    key = (raw["kind"], meta.get("namespace"), meta["name"])
    if type == "DELETED":
        ctx.children.forget(key)
        ctx.objects.forget(key)
    elif ctx.objects.observed(key, raw):
        ctx.queue.add(key, "resync" if type is None else "event")


async def _on_referenced(body: kopf.Body, memo: kopf.Memo, **kwargs: Any) -> None:
    """An object some owner reads changed: queue those owners."""
    ctx = context(memo)
    meta = body.get("metadata") or {}
    _queue_readers(ctx, body["kind"], meta.get("namespace"), meta["name"])
