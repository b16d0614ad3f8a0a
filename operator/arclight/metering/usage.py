"""What a pod used: its effective requests and run time from the pod JSON, cut into slices (pure).

A slice is written once and never changes (its key is ``(pod_uid, start)``), so a running
pod's slice is only written :data:`GRACE_SECONDS` after its slot ended: a kubelet that reports
the pod's end a little late does not leave a slice that counted time the pod did not run.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow
from typing import Any

from arclight.core.names import (
    GPU_TYPE_LABEL,
    METERING_FINALIZER,
    OWNER_KIND_LABEL,
    OWNER_NAME_LABEL,
    OWNER_UID_LABEL,
)
from arclight.metering.model import SLICE_SECONDS, PodUsage, UsageSlice
from arclight.metering.periods import slot_of

#: Seconds past a slice's end before a running pod's slice is written.
GRACE_SECONDS = 120
GPU_RESOURCE = "nvidia.com/gpu"
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
ENDED_PHASES = ("Succeeded", "Failed")

_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_EXACT = Context(prec=80, traps=[Inexact, InvalidOperation, Overflow], Emax=10**6, Emin=-(10**6))
# A type matches only where no digit follows it (A10 is not A100, L4 is not L40S).
_GPU_PRODUCTS = {name: re.compile(rf"{name}(?![0-9])", re.IGNORECASE)
                 for name in ("T4", "L4", "A10", "V100", "A100", "H100", "H200")}
_SECOND = timedelta(seconds=1)
_SLOT = timedelta(seconds=SLICE_SECONDS)


def parse_quantity(q: str | int) -> Decimal:
    """A Kubernetes quantity (``500m``, ``1.5``, ``4Gi``, ``1e3``, ``100k``) as an exact Decimal.

    ValueError for anything that is not a quantity.
    """
    if isinstance(q, int) and not isinstance(q, bool):
        return Decimal(q)
    match = _QUANTITY.fullmatch(q) if isinstance(q, str) else None
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {q!r}")
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    try:
        if suffix in _BINARY:
            return _EXACT.multiply(number, 2 ** _BINARY[suffix])
        exponent = _DECIMAL[suffix] if suffix in _DECIMAL else int(suffix[1:])
        return _EXACT.scaleb(number, exponent)
    except ArithmeticError as exc:
        raise ValueError(f"Kubernetes quantity out of range: {q!r}") from exc


def timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as aware UTC, truncated to whole seconds (None when absent)."""
    if not value:
        return None
    if isinstance(value, datetime):
        t = value
    else:
        t = datetime.fromisoformat(str(value))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).replace(microsecond=0)


def _request(container: Mapping[str, Any], resource: str) -> Decimal:
    """A container's request of ``resource``, defaulted to its limit as Kubernetes does."""
    resources = container.get("resources") or {}
    for kind in ("requests", "limits"):
        value = (resources.get(kind) or {}).get(resource)
        if value is not None:
            return parse_quantity(value)
    return Decimal(0)


def _effective(spec: Mapping[str, Any], resource: str, scale: int) -> int:
    """The pod's effective request of ``resource`` × ``scale``, rounded up per container.

    Kubernetes: max(the largest init container, the sum of the app containers), where
    restartable (sidecar) init containers keep running and add to both sides.
    """
    def amount(container: Mapping[str, Any]) -> int:
        return math.ceil(_EXACT.multiply(_request(container, resource), scale))

    sidecars = 0
    init_peak = 0
    for init in spec.get("initContainers") or []:
        if init.get("restartPolicy") == "Always":
            sidecars += amount(init)
            init_peak = max(init_peak, sidecars)
        else:
            init_peak = max(init_peak, sidecars + amount(init))
    apps = sum(amount(container) for container in spec.get("containers") or [])
    return max(init_peak, apps + sidecars)


def _gpu_type(labels: Mapping[str, str], spec: Mapping[str, Any], gpu_count: int) -> str:
    if gpu_count == 0:
        return "none"
    if labels.get(GPU_TYPE_LABEL):
        return labels[GPU_TYPE_LABEL].strip().lower()
    product = (spec.get("nodeSelector") or {}).get(GPU_PRODUCT_LABEL) or ""
    for name, pattern in _GPU_PRODUCTS.items():
        if pattern.search(product):
            return name.lower()
    return "unknown"


def _terminated(statuses: Iterable[Mapping[str, Any]], state: str) -> list[datetime]:
    times = ((status.get(state) or {}).get("terminated") or {} for status in statuses)
    return [t for t in (timestamp(term.get("finishedAt")) for term in times) if t is not None]


def _deletion_requested(pod: Mapping[str, Any]) -> datetime | None:
    """When deletion was asked for: ``deletionTimestamp`` less the grace period (the API
    server sets the stamp that far ahead)."""
    meta = pod.get("metadata") or {}
    stamp = timestamp(meta.get("deletionTimestamp"))
    if stamp is None:
        return None
    return stamp - timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))


def _end(pod: Mapping[str, Any], start: datetime) -> datetime | None:
    """When the pod ended (None while it runs), never before ``start``."""
    status = pod.get("status") or {}
    containers = list(status.get("containerStatuses") or [])
    every_terminated = bool(containers) and all(
        "terminated" in (c.get("state") or {}) for c in containers)
    deleted = _deletion_requested(pod)
    none_running = not any("running" in (c.get("state") or {}) for c in containers)
    if status.get("phase") not in ENDED_PHASES and not every_terminated and not (
            deleted is not None and none_running):
        return None  # running, even while deleting: the kubelet reports the containers' end
    statuses = containers + list(status.get("initContainerStatuses") or [])
    candidates = (
        _terminated(statuses, "state")
        or _terminated(statuses, "lastState")
        or [t for t in [deleted] if t]
        or [t for t in (timestamp(c.get("lastTransitionTime"))
                        for c in status.get("conditions") or []) if t]
        or [start]
    )
    return max(max(candidates), start)


def pod_usage(pod: Mapping[str, Any]) -> PodUsage | None:
    """A pod's metered usage; None when it is not metered (no owner-kind label) or never started.

    Requests are the Kubernetes effective requests (cpu in millicores and memory in bytes,
    rounded up; GPUs from ``nvidia.com/gpu``). ``end`` comes from the containers'
    ``finishedAt`` once the pod ended; a pod being deleted with no container running (one
    that never got its image, say) ended when its deletion was asked for; else None.
    """
    meta = pod.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    owner_kind = labels.get(OWNER_KIND_LABEL)
    start = timestamp((pod.get("status") or {}).get("startTime"))
    if not owner_kind or start is None:
        return None
    spec = pod.get("spec") or {}
    gpu_count = _effective(spec, GPU_RESOURCE, 1)
    return PodUsage(
        pod_uid=meta.get("uid") or "",
        pod_name=meta.get("name") or "",
        namespace=meta.get("namespace") or "",
        owner_kind=owner_kind,
        owner_name=labels.get(OWNER_NAME_LABEL) or "",
        owner_uid=labels.get(OWNER_UID_LABEL) or "",
        cpu_millis=_effective(spec, "cpu", 1000),
        memory_bytes=_effective(spec, "memory", 1),
        gpu_type=_gpu_type(labels, spec, gpu_count),
        gpu_count=gpu_count,
        start=start,
        end=_end(pod, start),
    )


def _begin(pod: PodUsage, written_until: datetime | None) -> datetime:
    start = pod.start.astimezone(UTC)
    return start if written_until is None else max(start, written_until.astimezone(UTC))


def slices(pod: PodUsage, now: datetime, written_until: datetime | None,
           price: Callable[[PodUsage, int], Decimal], budget: str | None) -> list[UsageSlice]:
    """The slices of ``pod`` to write now, in order, from ``written_until`` (or its start).

    An ended pod gets every slice up to its end, the last one ``final`` (a zero-length final
    slice when nothing is left, so its end is recorded; when more than its end was written,
    the slot holding the end, which the ledger rewrites); a running pod gets only the slots
    that ended at or before ``now - GRACE_SECONDS``. Pieces are cut at slot boundaries;
    ``credit_seconds = price(pod, seconds)``.
    """
    begin = _begin(pod, written_until)
    if pod.end is not None:
        stop = pod.end.astimezone(UTC)
        if begin > stop > pod.start:
            # written past its end (the kubelet reported it after the grace): the slot that
            # holds the end again, final; the ledger then drops what lies after it
            begin = max(pod.start.astimezone(UTC), slot_of(stop - _SECOND))
        elif begin >= stop:
            return [UsageSlice(pod, slot_of(begin), begin, begin, 0, price(pod, 0), budget, True)]
    else:
        stop = slot_of(now - timedelta(seconds=GRACE_SECONDS))
    out: list[UsageSlice] = []
    piece = begin
    while piece < stop:
        slot = slot_of(piece)
        piece_end = min(slot + _SLOT, stop)
        seconds = (piece_end - piece) // _SECOND
        final = pod.end is not None and piece_end == stop
        out.append(UsageSlice(pod, slot, piece, piece_end, seconds, price(pod, seconds), budget,
                              final))
        piece = piece_end
    return out


def unwritten_seconds(pod: PodUsage, now: datetime, written_until: datetime | None,
                      since: datetime | None = None) -> int:
    """Seconds of usage not yet in slices: from ``written_until`` (or start; not before
    ``since``, a period's start) to end or now."""
    stop = (pod.end if pod.end is not None else now).astimezone(UTC)
    begin = _begin(pod, written_until)
    if since is not None:
        begin = max(begin, since.astimezone(UTC))
    return max((stop - begin) // _SECOND, 0)


def released_finalizers(meta: Mapping[str, Any], usage: PodUsage | None,
                        written: Mapping[str, tuple[datetime, bool]]) -> list[str] | None:
    """The object's finalizers without the metering one, once it may go: its final slice is
    written (``written``: uid -> (end, final)), or its usage is unreadable and it is being
    deleted. None while it must stay (or the object never had it)."""
    finalizers = list(meta.get("finalizers") or [])
    if METERING_FINALIZER not in finalizers:
        return None
    if usage is None:
        if not meta.get("deletionTimestamp"):
            return None
    elif not written.get(usage.pod_uid, (None, False))[1]:
        return None
    return [f for f in finalizers if f != METERING_FINALIZER]
