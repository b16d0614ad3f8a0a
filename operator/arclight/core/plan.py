"""The shape of a reconcile pass, shared by every kind (pure data, no I/O).

``observe`` (framework) gathers an :class:`Observed`; a kind's pure ``plan(spec, observed,
facts)`` returns a :class:`Plan`; the framework's one generic ``apply`` carries it out:
server-side apply of the desired children, prune of the owned kinds' leftovers, an object
patch, one status patch, the Events, and a requeue.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from arclight.core.facts import Facts

Obj = dict[str, Any]
S = TypeVar("S")


def manifest_hash(manifest: Mapping[str, Any]) -> str:
    """A short digest of a manifest."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class ObjectRef:
    """An object the framework reads for a kind (a referenced TrainingRun, a budget, ...)."""

    api_version: str
    kind: str
    name: str
    namespace: str | None = None


@dataclass(frozen=True)
class ChildKind:
    """A kind of child: indexed by owner labels; ``prune`` removes undesired ones."""

    group: str
    version: str
    kind: str
    plural: str
    prune: bool = True

@dataclass(frozen=True)
class Child:
    """A desired child. ``create_only`` children are created once and never re-applied (a
    Job's template is immutable; the report ConfigMap belongs to the trainer); ``patch``
    is then a merge patch for their mutable fields, sent only when the plan says so."""

    manifest: Obj
    create_only: bool = False
    patch: Obj | None = None

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @functools.cached_property
    def digest(self) -> str:
        """A short digest of the manifest (kept on the child as what was last applied)."""
        return manifest_hash(self.manifest)

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event about the object."""

    reason: str
    message: str
    warning: bool = False


@dataclass
class Observed:
    """What one pass saw: the object, its children by kind and name, referenced objects."""

    obj: Obj
    children: Mapping[str, Mapping[str, Obj]] = field(default_factory=dict)
    refs: Mapping[ObjectRef, Obj | None] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.obj["metadata"]["name"])

    @property
    def namespace(self) -> str | None:
        return self.obj["metadata"].get("namespace")

    @property
    def status(self) -> Obj:
        return dict(self.obj.get("status") or {})

    def of_kind(self, kind: str) -> Mapping[str, Obj]:
        """Children of ``kind`` by name (empty when there are none)."""
        return self.children.get(kind, {})

    def child(self, kind: str, name: str) -> Obj | None:
        return self.of_kind(kind).get(name)

    def ref(self, ref: ObjectRef) -> Obj | None:
        return self.refs.get(ref)


@dataclass
class Plan:
    """Everything one pass wants; ``status`` is the complete new status (fields left out are
    cleared), ``prune`` the owned kinds whose undesired children are deleted, ``applies``
    objects outside the owned children (created or patched like a create-only child)."""

    status: Obj
    children: list[Child] = field(default_factory=list)
    prune: tuple[str, ...] = ()
    applies: list[Child] = field(default_factory=list)
    object_patch: Obj | None = None
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None

    def with_status(self, status: Obj) -> Plan:
        return dataclasses.replace(self, status=status)


@dataclass(frozen=True)
class Kind(Generic[S]):
    """What a kind registers with the framework: one small object.

    ``parse`` validates the object into its typed spec (raises InvalidSpec); ``references``
    names the objects observe must read; ``plan`` is the pure decision; ``on_error`` the
    plan for an InvalidSpec or DependencyNotReady (conditions and Events only).
    """

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    children: tuple[ChildKind, ...]
    parse: Callable[[Obj], S]
    plan: Callable[[S, Observed, Facts], Plan]
    on_error: Callable[[Observed, Exception, Facts], Plan]
    references: Callable[[Obj, S], Sequence[ObjectRef]] = lambda obj, spec: ()
    watches: tuple[ChildKind, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"
