"""The operator's typed context: what every handler and worker shares (one memo entry)."""
from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass, field
from typing import Any

from arclight.clients import discovery
from arclight.clients.kube import Kube
from arclight.core.costs import Metering
from arclight.core.facts import Facts
from arclight.core.plan import Kind
from arclight.framework.index import ChildIndex, OwnerKey
from arclight.framework.objects import LatestObjects
from arclight.framework.queue import WorkQueue
from arclight.framework.settings import Settings
from arclight.metering import occupancy

MEMO_KEY = "arclight"


@dataclass
class References:
    """Which objects each owner read in its last pass, so that a change of a referenced
    object (a TrainingRun's new checkpoint, a budget appearing) queues its readers."""

    _by_target: dict[OwnerKey, set[OwnerKey]] = field(default_factory=dict)
    _by_owner: dict[OwnerKey, set[OwnerKey]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, owner: OwnerKey, targets: set[OwnerKey]) -> None:
        with self._lock:
            for old in self._by_owner.pop(owner, set()) - targets:
                self._by_target.get(old, set()).discard(owner)
            for target in targets:
                self._by_target.setdefault(target, set()).add(owner)
            if targets:
                self._by_owner[owner] = set(targets)

    def readers(self, target: OwnerKey) -> list[OwnerKey]:
        with self._lock:
            return sorted(self._by_target.get(target, ()), key=str)


@dataclass
class OperatorContext:
    """Settings, the API client, the queue, the child index, the owner objects and the
    registered kinds."""

    settings: Settings
    kube: Kube
    kinds: dict[str, Kind[Any]]
    queue: WorkQueue[OwnerKey] = field(default_factory=WorkQueue)
    children: ChildIndex = field(default_factory=ChildIndex)
    references: References = field(default_factory=References)
    #: The newest known version of each owner object (watch events and our own writes).
    objects: LatestObjects = field(default_factory=LatestObjects)
    #: The meter's newest snapshot (replaced whole after each round; disabled without one).
    metering: Metering = field(default_factory=Metering)

    def facts(self) -> Facts:
        """The facts of a pass that starts now."""
        return Facts(trainer_image=self.settings.trainer_image,
                     artifacts_claim=self.settings.artifacts_claim,
                     mlflow_uri=self.settings.mlflow_uri,
                     capabilities=discovery.capabilities(self.kube.api),
                     now=datetime.datetime.now(datetime.UTC), metering=self.metering,
                     claims=occupancy.claims_by_budget(self.objects.of_kind("TrainingRun"),
                                                       self.metering))


def context(memo: Any) -> OperatorContext:
    """The context the startup handler put into kopf's memo."""
    ctx: OperatorContext | None = memo.get(MEMO_KEY)
    if ctx is None:
        raise RuntimeError("the operator context is missing: the startup handler did not run")
    return ctx
