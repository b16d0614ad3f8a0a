"""Artifact storage: which claims are metered, their usage from the claim JSON, its price (pure).

*Which claims:* in each namespace a CreditBudget selects, the operator's artifacts claim (chart
value ``artifacts.claim``) and every claim a TrainingRun's ``spec.checkpoint.uri`` names
(``pvc://CLAIM/...``). A metered claim carries the metering finalizer and stays metered, at
the rates of its namespace's budget, until it is deleted.

*Size:* ``spec.resources.requests.storage``, what the namespace asked for (present from the
claim's creation; ``status.capacity`` waits for a bound volume and a provisioner may round it
up), read when a slice is written: a resize counts from the next slice.

*Time:* the claim's own ``creationTimestamp`` to its ``deletionTimestamp``, cut into the
pods' 15-minute slices (``arclight.metering.usage.slices``).

*Price:* ``rates.storageGiBMonth`` credits per GiB-month of :data:`MONTH_HOURS` hours. A
month of 730 h does not divide into a finite decimal, so the rate is turned once into credits
per GiB-hour, ``storageGiBMonth / 730`` rounded half up to :data:`RATE_PLACES` decimal places
(10 → 0.013698630137); from there on a slice's price is exact like a pod's: GiB-hour rate ×
bytes / 2**30 × seconds, times 3600 as ``credit_seconds``.
"""
from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

from arclight.api.creditbudget import Rates
from arclight.core.names import METERING_FINALIZER
from arclight.metering.model import PodUsage
from arclight.metering.pricing import EXACT, GIB
from arclight.metering.usage import parse_quantity, timestamp

#: Hours in a GiB-month (the cloud convention: 8,760 h a year / 12).
MONTH_HOURS = 730
#: Decimal places of the GiB-hour rate derived from ``storageGiBMonth``.
RATE_PLACES = 12
CLAIM_KIND = "PersistentVolumeClaim"
_PVC = "pvc://"


def gib_hour_rate(rates: Rates) -> Decimal:
    """Credits per GiB-hour: ``storageGiBMonth / 730``, rounded half up to 12 places."""
    scaled = Fraction(Decimal(rates.storage_gib_month)) * 10**RATE_PLACES / MONTH_HOURS
    return Decimal(math.floor(scaled + Fraction(1, 2))).scaleb(-RATE_PLACES)


def credit_seconds(rates: Rates, claim: PodUsage, seconds: int) -> Decimal:
    """The exact price of ``seconds`` of ``claim``'s size times 3600 (what a slice stores)."""
    if seconds < 0:
        raise ValueError(f"seconds must not be negative (got {seconds})")
    per_hour = EXACT.multiply(gib_hour_rate(rates), EXACT.divide(claim.storage_bytes, GIB))
    return EXACT.multiply(per_hour, seconds)


def claim_usage(pvc: Mapping[str, Any]) -> PodUsage:
    """A claim's metered usage: its requested bytes (rounded up) from ``creationTimestamp``
    to ``deletionTimestamp`` (None while it exists); ValueError when unreadable."""
    meta = pvc.get("metadata") or {}
    start = timestamp(meta.get("creationTimestamp"))
    if start is None:
        raise ValueError("no creationTimestamp")
    requests = ((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}
    size = math.ceil(parse_quantity(requests.get("storage") or 0))
    if size < 0:
        raise ValueError(f"negative storage request {requests.get('storage')!r}")
    end = timestamp(meta.get("deletionTimestamp"))
    name, uid = meta.get("name") or "", meta.get("uid") or ""
    return PodUsage(pod_uid=uid, pod_name=name, namespace=meta.get("namespace") or "",
                    owner_kind=CLAIM_KIND, owner_name=name, owner_uid=uid, cpu_millis=0,
                    memory_bytes=0, gpu_type="none", gpu_count=0, start=start,
                    end=None if end is None else max(end, start), storage_bytes=size)


def named_claims(namespaces: Collection[str], artifacts_claim: str | None,
                 runs: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """``(namespace, claim)`` of the claims holding artifacts in ``namespaces``: the artifacts
    claim in each, and those the TrainingRuns there name in ``spec.checkpoint.uri``."""
    found = {(ns, artifacts_claim) for ns in namespaces} if artifacts_claim else set()
    for run in runs:
        namespace = str((run.get("metadata") or {}).get("namespace") or "")
        uri = ((run.get("spec") or {}).get("checkpoint") or {}).get("uri") or ""
        claim = uri[len(_PVC):].split("/", 1)[0] if uri.startswith(_PVC) else ""
        if claim and namespace in namespaces:
            found.add((namespace, claim))
    return found


def is_metered(pvc: Mapping[str, Any], named: Collection[tuple[str, str]]) -> bool:
    """Whether the claim is metered: named now, or held by the metering finalizer (metered
    before: it stays metered until it is deleted)."""
    meta = pvc.get("metadata") or {}
    return ((meta.get("namespace"), meta.get("name")) in named
            or METERING_FINALIZER in (meta.get("finalizers") or []))
