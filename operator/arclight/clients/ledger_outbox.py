"""The outbox of CreditBudget webhooks in the ledger: one row per notification owed, claimed
with a lease until delivered or given up (mixed into :class:`arclight.clients.ledger.Ledger`).
"""
from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from arclight.clients.ledger_time import aware as _aware
from arclight.clients.ledger_time import utc as _utc
from arclight.metering.notifications import Notification

# Rows already owed are filtered first (no sequence value burnt each round); the conflict
# clause covers a second replica inserting the same rows at once.
_ENQUEUE = """
INSERT INTO budget_notifications (budget, period_start, threshold, target, event, payload,
    next_attempt_at)
SELECT v.budget, v.period_start, v.threshold, v.target, v.event, v.payload::jsonb, %s
FROM unnest(%s::text[], %s::timestamptz[], %s::integer[], %s::text[], %s::text[], %s::text[])
    AS v(budget, period_start, threshold, target, event, payload)
WHERE NOT EXISTS (SELECT 1 FROM budget_notifications n WHERE n.budget = v.budget
    AND n.period_start = v.period_start AND n.threshold = v.threshold AND n.target = v.target)
ON CONFLICT (budget, period_start, threshold, target) DO NOTHING
"""
# One statement: the rows are locked (others skip them) until it commits, and by then their
# lease has moved them out of what is due; `attempts` is the claim's fencing token.
_CLAIM = """
UPDATE budget_notifications n SET attempts = n.attempts + 1, next_attempt_at = %(until)s
FROM (SELECT id FROM budget_notifications
      WHERE delivered_at IS NULL AND next_attempt_at <= %(now)s
      ORDER BY next_attempt_at, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS due
WHERE n.id = due.id
RETURNING n.id, n.budget, n.target, n.event, n.payload, n.attempts
"""



@dataclass(frozen=True)
class ClaimedNotification:
    """A notification claimed for one attempt (``attempts`` counts it)."""

    id: int
    budget: str
    target: str
    event: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class PendingNotification:
    """A notification not delivered yet, or given up (``next_attempt_at`` None)."""

    period_start: datetime.datetime
    threshold: int
    event: str
    target: str
    attempts: int
    last_error: str
    next_attempt_at: datetime.datetime | None


class Outbox:
    """The outbox's queries, over the ledger's connections."""

    def _connection(self) -> AbstractContextManager[psycopg.Connection[TupleRow]]:
        raise NotImplementedError

    def enqueue_notifications(self, rows: Sequence[Notification],
                              now: datetime.datetime) -> int:
        """Owe each notification once per key, due at ``now`` (rows owed already stay as they
        are); the number of new rows."""
        if not rows:
            return 0
        with self._connection() as conn:
            cur = conn.execute(_ENQUEUE, (
                _aware(now, "now"), [r.budget for r in rows],
                [_aware(r.period_start, "period_start") for r in rows],
                [r.threshold for r in rows], [r.target for r in rows], [r.event for r in rows],
                [json.dumps(r.payload) for r in rows]))
            return max(cur.rowcount, 0)

    def claim_due(self, now: datetime.datetime, limit: int,
                  lease: datetime.timedelta) -> list[ClaimedNotification]:
        """Claim up to ``limit`` rows due at ``now`` for ``lease`` (no other claim gets them
        meanwhile), counting the attempt; a claim not marked by then is due again."""
        with self._connection() as conn:
            rows = conn.execute(_CLAIM, {"now": _aware(now, "now"), "until": now + lease,
                                         "limit": limit}).fetchall()
        return [ClaimedNotification(*row) for row in rows]

    def mark_delivered(self, id_: int, at: datetime.datetime) -> bool:
        """Record the delivery (the first one counts); whether this call recorded it."""
        with self._connection() as conn:
            return conn.execute(
                "UPDATE budget_notifications SET delivered_at = %s, next_attempt_at = NULL,"
                " last_error = '' WHERE id = %s AND delivered_at IS NULL",
                (_aware(at, "at"), id_)).rowcount == 1

    def mark_failed(self, id_: int, attempts: int, next_attempt_at: datetime.datetime | None,
                    error: str) -> bool:
        """Record a failed attempt: due again at ``next_attempt_at``, or given up (None).
        Ignored (False) unless ``attempts`` is still the row's: a later claim owns it."""
        with self._connection() as conn:
            return conn.execute(
                "UPDATE budget_notifications SET next_attempt_at = %s, last_error = %s"
                " WHERE id = %s AND attempts = %s AND delivered_at IS NULL",
                (next_attempt_at, error, id_, attempts)).rowcount == 1

    def undelivered_notifications(self, budget: str, period_start: datetime.datetime | None
                                  = None) -> list[PendingNotification]:
        """The budget's notifications not delivered (of one period, or all), oldest first;
        ``next_attempt_at`` None: given up."""
        query = ("SELECT period_start, threshold, event, target, attempts, last_error,"
                 " next_attempt_at FROM budget_notifications"
                 " WHERE budget = %s AND delivered_at IS NULL")
        params: list[object] = [budget]
        if period_start is not None:
            query += " AND period_start = %s"
            params.append(_aware(period_start, "period_start"))
        with self._connection() as conn:
            rows = conn.execute(query + " ORDER BY id", params).fetchall()
        return [PendingNotification(_utc(start), threshold, event, target, attempts, error,
                                    _utc(due) if due else None)
                for start, threshold, event, target, attempts, error, due in rows]
