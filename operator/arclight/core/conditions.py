"""Status helpers: conditions with observedGeneration, and the phase summary.

Conditions are the truth (Kubernetes API conventions); ``phase`` only summarises them for
printer columns. ``lastTransitionTime`` changes only when a condition's status flips.
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any

from arclight.core.plan import Event

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
    return cond is not None and cond.get("status") == TRUE


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
        "lastTransitionTime": (now or now_iso()) if flipped or old is None
        else old.get("lastTransitionTime"),
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


class StatusBuilder:
    """The status one pass writes: starts from the status as read, sets conditions stamped
    with the object's generation (``lastTransitionTime`` moves only on a flip), queues
    Events, and turns condition transitions into Events at the end."""

    def __init__(self, old_status: Mapping[str, Any] | None, generation: int | None,
                 now: str) -> None:
        self.old: dict[str, Any] = dict(old_status or {})
        self.status: dict[str, Any] = {**self.old,
                                       "conditions": list(self.old.get("conditions") or [])}
        self.generation, self.now = generation, now
        self.events: list[Event] = []

    def condition(self, type_: str, status: str, reason: str, message: str) -> None:
        """Set condition ``type_``."""
        self.status["conditions"] = set_condition(self.status["conditions"], type_, status,
                                                  reason, message, self.generation, self.now)

    def is_true(self, type_: str) -> bool:
        return is_true(self.status["conditions"], type_)

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        """Queue an Event about the object."""
        self.events.append(Event(reason, message, warning))

    def transition_events(self, warning_types: Sequence[str],
                          quiet: Sequence[tuple[str, str, str | None]] = ()) -> None:
        """An Event for each condition whose status or reason changed, except Unknown ones and
        those matching a ``(type, status, reason or None for any)`` in ``quiet``; True
        ``warning_types`` warn."""
        for cond in transitions(self.old.get("conditions") or [], self.status["conditions"]):
            if cond["status"] == UNKNOWN or any(
                    (cond["type"], cond["status"]) == (type_, status)
                    and reason in (None, cond["reason"]) for type_, status, reason in quiet):
                continue
            self.event(cond["reason"], f"{cond['type']}={cond['status']}: {cond['message']}",
                       warning=cond["status"] == TRUE and cond["type"] in warning_types)
