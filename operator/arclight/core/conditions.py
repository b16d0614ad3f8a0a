"""Status helpers: conditions with observedGeneration, and the phase summary.

Conditions are the truth (Kubernetes API conventions); ``phase`` only summarises them for
printer columns. ``lastTransitionTime`` changes only when a condition's status flips.
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


def now_iso() -> str:
    """The current UTC time as an RFC 3339 timestamp with second precision."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(conditions: Sequence[Mapping[str, Any]], type_: str) -> Mapping[str, Any] | None:
    """Return the condition of ``type_`` or None."""
    return next((c for c in conditions if c.get("type") == type_), None)


def is_true(conditions: Sequence[Mapping[str, Any]], type_: str) -> bool:
    """Whether the condition of ``type_`` exists with status True."""
    cond = get_condition(conditions, type_)
    return bool(cond) and cond.get("status") == TRUE


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str,
    generation: int | None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """Return a new condition list with ``type_`` set.

    ``lastTransitionTime`` is kept unless ``status`` differs from the previous one.
    """
    if status not in (TRUE, FALSE, UNKNOWN):
        raise ValueError(f"condition status must be True, False or Unknown, not {status!r}")
    old = get_condition(conditions, type_)
    flipped = old is None or old.get("status") != status
    new = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": (now or now_iso()) if flipped else old.get("lastTransitionTime"),
    }
    if generation is None:
        del new["observedGeneration"]
    result = [dict(c) for c in conditions if c.get("type") != type_]
    result.append(new)
    return sorted(result, key=lambda c: c["type"])


def transitions(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Conditions in ``after`` whose status or reason differs from ``before``."""
    changed = []
    for cond in after:
        old = get_condition(before, cond["type"])
        if old is None or (old.get("status"), old.get("reason")) != (cond["status"], cond["reason"]):
            changed.append(cond)
    return changed


def trainingrun_phase(conditions: Sequence[Mapping[str, Any]], suspended: bool) -> str:
    """Summarise TrainingRun conditions into ``status.phase``."""
    if is_true(conditions, "Failed"):
        return "Failed"
    if is_true(conditions, "Succeeded"):
        return "Succeeded"
    if suspended:
        return "Suspended"
    if is_true(conditions, "Running"):
        return "Running"
    if is_true(conditions, "Admitted"):
        return "Admitted"
    return "Pending"
