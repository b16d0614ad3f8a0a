"""CreditBudget webhooks, the pure part: what a budget's standing owes, the JSON body, the
signature and the retry schedule.

A budget whose usage reaches an alert threshold (``spec.alerts``, as the Warning condition
counts: ``percentUsed >= threshold``) in a period owes every ``spec.notify`` target that
subscribes to the event one POST: ``BudgetWarning`` below 100, ``BudgetExhausted`` at 100.
A notification is keyed on (budget, period start, threshold, target); the target is a hash of
where it goes (its ``url``, or the Secret key holding the URL), so reordering ``spec.notify``
or changing a target's signing key owes nothing new, and a new destination is owed every
threshold already crossed in the period.

Signature: ``X-Arclight-Signature: t=<unix>,v1=<hex>``, ``hex`` the HMAC-SHA256 of
``<unix>.<body>`` (the exact bytes sent) keyed with the signing key; ``<unix>`` is the time
of the attempt, so a receiver can refuse old replays. The body's ``id`` is the same on every
attempt: delivery is at least once, and a receiver dedupes on it.

Retries (:func:`retry_at`): 10 s, 30 s, 1 min, 2 min, 5 min, 10 min, 30 min, then hourly;
after :data:`MAX_ATTEMPTS` attempts (about 23 hours) the notification is given up.
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arclight.api.creditbudget import BudgetNotification, CreditBudgetSpec
from arclight.core.costs import BudgetUsage
from arclight.metering.standing import Standing, standing

WARNING = "BudgetWarning"
EXHAUSTED = "BudgetExhausted"
SIGNATURE_HEADER = "X-Arclight-Signature"
#: Wait after the n-th failed attempt (the last one repeats).
RETRY_DELAYS = (10, 30, 60, 120, 300, 600, 1800, 3600)
MAX_ATTEMPTS = 30
_IDS = uuid.UUID("5d0c3e8a-6b1f-4f36-9a57-3c1f0a6c2b11")  # namespace of the payloads' ids


@dataclass(frozen=True)
class Notification:
    """One POST owed: the outbox row's key, its event and its body."""

    budget: str
    period_start: datetime.datetime
    threshold: int
    target: str
    event: str
    payload: Mapping[str, Any]


def event_of(threshold: int) -> str:
    """``BudgetExhausted`` for the 100 % threshold, ``BudgetWarning`` below."""
    return EXHAUSTED if threshold >= 100 else WARNING


def target_key(target: BudgetNotification) -> str:
    """A stable hash of where ``target`` goes (its URL or Secret key, nothing else)."""
    ref = target.secret_ref
    where = {"url": target.url} if ref is None else {"secretRef": [ref.name, ref.key]}
    return hashlib.sha256(json.dumps(where, sort_keys=True).encode()).hexdigest()[:32]


def crossed(spec: CreditBudgetSpec, figures: Standing) -> list[int]:
    """The alert thresholds the budget has reached, lowest first."""
    return sorted(a for a in set(spec.alerts) if figures.percent_used >= a)


def owed(name: str, spec: CreditBudgetSpec, usage: BudgetUsage) -> list[Notification]:
    """Every notification the budget's period owes so far (none without ``spec.notify``)."""
    if not spec.notify:
        return []
    found = []
    for threshold in crossed(spec, standing(usage)):
        event = event_of(threshold)
        for target in spec.notify:
            if event in target.events:
                key = target_key(target)
                found.append(Notification(name, usage.period_start, threshold, key, event,
                                          payload(name, usage, threshold, key)))
    return found


def _iso(t: datetime.datetime | None) -> str | None:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def payload(name: str, usage: BudgetUsage, threshold: int, target: str) -> dict[str, Any]:
    """The JSON body: the budget's figures when the threshold was found crossed."""
    figures = standing(usage)
    event = event_of(threshold)
    return {
        "id": str(uuid.uuid5(_IDS, f"{name}/{_iso(usage.period_start)}/{threshold}/{target}")),
        "event": event, "budget": name, "threshold": threshold,
        "periodStart": _iso(usage.period_start), "periodEnd": _iso(usage.period_end),
        "used": figures.used, "granted": figures.granted, "remaining": figures.remaining,
        "percentUsed": figures.percent_used, "enforcement": usage.enforcement,
        "message": f"{figures.describe(name)}: past the {threshold}% alert.",
    }


def body(data: Mapping[str, Any]) -> bytes:
    """The bytes POSTed (compact JSON, keys sorted)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def signature(key: str, timestamp: int, data: bytes) -> str:
    """The ``X-Arclight-Signature`` value: ``t=<unix>,v1=<HMAC-SHA256 of "<unix>.<body>">``."""
    mac = hmac.new(key.encode(), f"{timestamp}.".encode() + data, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def retry_at(attempts: int, now: datetime.datetime) -> datetime.datetime | None:
    """When to try again after ``attempts`` failed attempts; None once it is given up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    delay = RETRY_DELAYS[min(max(attempts, 1), len(RETRY_DELAYS)) - 1]
    return now + datetime.timedelta(seconds=delay)
