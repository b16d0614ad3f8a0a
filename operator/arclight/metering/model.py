"""The metering records shared by the pure rooms, the ledger client and the meter.

A pod's (or an artifact claim's) usage is cut into *slices* aligned to :data:`SLICE_SECONDS`
of UTC time (every IANA zone's offset is a multiple of 15 minutes, so every period boundary in
every time zone is a slice boundary and a slice never straddles two periods). A slice's natural
key is ``(pod_uid, start)``: writing it twice is a no-op, so a restart, a retry or a second
replica never counts a second twice.

Prices are exact: a slice carries ``credit_seconds``, its price times 3600 (credits per hour
times seconds), a finite :class:`~decimal.Decimal` (Postgres ``NUMERIC``), never a float. A
reported figure is ``sum(credit_seconds) / 3600`` rounded once, half up, to whole credits
(1 credit = 0.01 USD); see :func:`arclight.metering.pricing.credits`.
"""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

#: Length of a usage slice in seconds (15 minutes).
SLICE_SECONDS = 900


@dataclass(frozen=True)
class PodUsage:
    """What a metered pod requests and when it ran, from the pod's own timestamps.

    ``end`` is None while the pod runs. ``owner_*`` is the Arclight object the pod belongs
    to (TrainingRun, ModelDeployment); ``gpu_type`` is ``"none"`` when ``gpu_count`` is 0.
    An artifact claim is one too (``arclight.metering.storage``): ``storage_bytes`` and no
    CPU, memory or GPU, owned by itself (kind ``PersistentVolumeClaim``).
    """

    pod_uid: str
    pod_name: str
    namespace: str
    owner_kind: str
    owner_name: str
    owner_uid: str
    cpu_millis: int
    memory_bytes: int
    gpu_type: str
    gpu_count: int
    start: datetime.datetime
    end: datetime.datetime | None
    storage_bytes: int = 0


@dataclass(frozen=True)
class UsageSlice:
    """One pod's usage within one slice: ``[start, end)`` inside ``[slot, slot + 900 s)``.

    ``seconds`` = ``end - start`` (whole seconds: pod timestamps have second precision).
    ``budget`` is the CreditBudget the slice was charged to (None: no budget selected the
    namespace), ``credit_seconds`` its exact price times 3600 at that budget's rates (the
    default rates when there is no budget). ``final`` marks the last slice of a pod that
    ended.
    """

    pod: PodUsage
    slot: datetime.datetime
    start: datetime.datetime
    end: datetime.datetime
    seconds: int
    credit_seconds: Decimal
    budget: str | None
    final: bool


@dataclass
class Metered:
    """An object the meter reads (a pod, an artifact claim): as listed, its usage (None when
    unreadable) and the budget that pays for it."""

    obj: dict[str, Any]
    usage: PodUsage | None
    budget: str | None = None
