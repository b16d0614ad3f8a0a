"""The credit ledger in Postgres: usage events (one row per pod and slice), credit
transactions (grants, rollovers, refunds, bonuses, adjustments) and the outbox of CreditBudget
webhooks (one row per notification owed, claimed with a lease, until delivered).

Synchronous and thread-safe: each call takes an idle connection (pinged first) or opens a new
one (``connect_timeout`` 5 s), and gives it back afterwards; at most :data:`MAX_IDLE` are
kept. When Postgres cannot be reached or a connection drops, a call raises
:class:`LedgerUnavailable` and the next call connects afresh, so the ledger recovers by itself
once Postgres is back. Writes are idempotent on their natural keys, so a caller simply retries.

The schema is alembic's (``ledger_migrations/``, version table ``ledger_alembic_version`` so
that it can share a database with another alembic user such as MLflow); :meth:`Ledger.migrate`
upgrades it to head under an advisory lock, safe from several replicas at once.
"""
from __future__ import annotations

import datetime
import threading
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

import psycopg
import sqlalchemy
from alembic import command
from alembic.config import Config
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool

from arclight.clients.ledger_outbox import Outbox
from arclight.clients.ledger_time import aware as _aware
from arclight.clients.ledger_time import utc as _utc
from arclight.metering.model import UsageSlice

MIGRATIONS = Path(__file__).resolve().parent / "ledger_migrations"
VERSION_TABLE = "ledger_alembic_version"
CONNECT_TIMEOUT_S = 5
BATCH_SIZE = 1000
MAX_IDLE = 4
#: ``pg_advisory_xact_lock`` key held while migrating ("Arclight" in ASCII).
MIGRATE_LOCK = 0x4172636C69676874
KINDS = ("grant", "rollover", "refund", "bonus", "adjustment")
#: Kinds a budget's ``spec.adjustments`` record, each key once over all periods.
ADJUSTMENT_KINDS = ("refund", "bonus", "adjustment")

_Conn = psycopg.Connection[TupleRow]
_UTC = datetime.UTC

# Parameters in binary (%b): text-format arrays cost twice as much to build.
_INSERT_EVENTS = """
INSERT INTO usage_events (pod_uid, slot, start, "end", seconds, namespace, owner_kind,
    owner_name, owner_uid, pod_name, gpu_type, gpu_count, cpu_millis, memory_bytes,
    storage_bytes, credit_seconds, budget, final)
SELECT * FROM unnest(%b::text[], %b::timestamptz[], %b::timestamptz[], %b::timestamptz[],
    %b::integer[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[],
    %b::integer[], %b::bigint[], %b::bigint[], %b::bigint[], %b::numeric[], %b::text[],
    %b::boolean[])
    AS v(pod_uid, slot, start, "end", seconds, namespace, owner_kind, owner_name, owner_uid,
         pod_name, gpu_type, gpu_count, cpu_millis, memory_bytes, storage_bytes,
         credit_seconds, budget, final)
WHERE v.final OR NOT EXISTS (
    SELECT 1 FROM usage_events e WHERE e.pod_uid = v.pod_uid AND e.final)
ON CONFLICT (pod_uid, slot) DO UPDATE SET start = EXCLUDED.start, "end" = EXCLUDED."end",
    seconds = EXCLUDED.seconds, storage_bytes = EXCLUDED.storage_bytes,
    credit_seconds = EXCLUDED.credit_seconds, final = true
    WHERE EXCLUDED.final AND NOT usage_events.final
"""
# A pod's end is known once: what was written past it (a kubelet that reported the end later
# than the grace) goes, and the slot holding the end is rewritten (in the statement above).
_TRUNCATE_AFTER_END = """
DELETE FROM usage_events e USING unnest(%b::text[], %b::timestamptz[]) AS f(pod_uid, slot)
WHERE e.pod_uid = f.pod_uid AND e.slot > f.slot AND NOT e.final
"""


class LedgerUnavailable(Exception):
    """Postgres cannot be reached or the connection dropped; retry later."""


@dataclass(frozen=True)
class OwnerUsage:
    """An owner's (TrainingRun's, ModelDeployment's) usage so far."""

    credit_seconds: Decimal
    gpu_seconds: int  # seconds x gpu_count, summed


@dataclass(frozen=True)
class RequestCount:
    """Requests one serving container (a pod's incarnation) answered, read at a time."""

    pod_uid: str
    incarnation: int
    owner_uid: str
    namespace: str
    owner_name: str
    requests: int
    observed_at: datetime.datetime


@dataclass(frozen=True)
class Transaction:
    """One credit transaction of a budget period."""

    kind: str
    credits: int
    key: str
    note: str
    created_at: datetime.datetime


def sqlalchemy_url(dsn: str) -> URL:
    """The ``postgresql+psycopg`` URL of a libpq DSN (URL or ``key=value`` form).

    Every libpq parameter is kept (``sslmode`` and the like as query parameters); socket
    directories and multi-host lists travel as the ``host``/``port`` query parameters.
    """
    params: dict[str, Any] = conninfo_to_dict(dsn)
    user = params.pop("user", None)
    password = params.pop("password", None)
    database = params.pop("dbname", None)
    host = params.pop("host", None)
    port = params.pop("port", None)
    query = {key: str(value) for key, value in params.items()}
    if host is not None and ("," in host or "/" in host):
        query["host"] = host
        host = None
        if port is not None:
            query["port"] = str(port)
            port = None
    return URL.create("postgresql+psycopg", username=user, password=password, host=host,
                      port=int(port) if port else None, database=database, query=query)


def alembic_config() -> Config:
    """An alembic configuration for the ledger's migrations (no ini file)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    config.set_main_option("version_table", VERSION_TABLE)
    return config


class Ledger(Outbox):
    """The ledger at ``dsn`` (a libpq connection string or ``postgresql://`` URL)."""

    def __init__(self, dsn: str) -> None:
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise ValueError("invalid ledger DSN (not a libpq connection string)") from None
        self._dsn = dsn
        secret = str(params.get("password") or "")
        self._secrets = [s for s in {secret, quote(secret, safe=""), quote(secret)} if s]
        self._where = (f"{params.get('host', 'localhost')}:{params.get('port', 5432)}"
                       f"/{params.get('dbname', params.get('user', ''))}")
        self._connect_args: dict[str, Any] = {}
        if "connect_timeout" not in params:
            self._connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        if "tcp_user_timeout" not in params:  # a query on a half-open connection fails, too
            self._connect_args["tcp_user_timeout"] = CONNECT_TIMEOUT_S * 1000
        self._idle: list[_Conn] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Ledger({self._where})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections (a later call opens new ones)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # --- schema ---------------------------------------------------------------------------

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (a no-op when it is there)."""
        engine = sqlalchemy.create_engine(sqlalchemy_url(self._dsn), poolclass=NullPool,
                                          connect_args=self._connect_args)
        try:
            with engine.begin() as connection:
                # Held to the commit: a second replica waits, then finds the schema at head.
                connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"),
                                   {"key": MIGRATE_LOCK})
                config = alembic_config()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
            raise self._unavailable(exc.orig or exc) from exc
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from exc
        finally:
            engine.dispose()

    # --- usage events ---------------------------------------------------------------------

    def write(self, slices: Sequence[UsageSlice]) -> int:
        """Store slices not stored yet (key ``(pod_uid, slot)``); the number of rows written.

        A pod's final slice also corrects what was written past its end (a kubelet that
        reported the end after the grace): the slot holding the end is rewritten and later
        ones are deleted; nothing is written for a pod once its final slice is. One
        transaction per batch of :data:`BATCH_SIZE`. Rows go in key order, so concurrent
        writers of overlapping batches never deadlock.
        """
        unique = {(s.pod.pod_uid, _aware(s.slot, "slot")): s for s in slices}
        rows = [unique[key] for key in sorted(unique)]
        if not rows:
            return 0
        for s in rows:
            if not s.credit_seconds.is_finite():
                raise ValueError(f"credit_seconds of {s.pod.pod_uid} at {s.slot} is not finite")
        new = 0
        with self._connection() as conn:
            for first in range(0, len(rows), BATCH_SIZE):
                batch = rows[first:first + BATCH_SIZE]
                with conn.transaction():
                    cur = conn.execute(_INSERT_EVENTS, _columns(batch))
                    new += max(cur.rowcount, 0)
                    finals = [s for s in batch if s.final]
                    if finals:
                        conn.execute(_TRUNCATE_AFTER_END, ([s.pod.pod_uid for s in finals],
                                                           [s.slot for s in finals]))
        return new

    def written_until(self, pod_uids: Collection[str]) -> dict[str, tuple[datetime.datetime, bool]]:
        """Per pod with events: the latest ``end`` written and whether its final slice is."""
        if not pod_uids:
            return {}
        with self._connection() as conn:
            rows = conn.execute(
                'SELECT pod_uid, max("end"), bool_or(final) FROM usage_events'
                " WHERE pod_uid = ANY(%s) GROUP BY pod_uid",
                (list(pod_uids),),
            ).fetchall()
        return {uid: (_utc(end), bool(final)) for uid, end, final in rows}

    def budget_usage(self, budget: str, since: datetime.datetime,
                     until: datetime.datetime | None) -> dict[str, Decimal]:
        """Credit-seconds of ``budget`` by namespace, over slots in ``[since, until)``."""
        query = ("SELECT namespace, sum(credit_seconds) FROM usage_events"
                 " WHERE budget = %s AND slot >= %s")
        params: list[object] = [budget, _aware(since, "since")]
        if until is not None:
            query += " AND slot < %s"
            params.append(_aware(until, "until"))
        with self._connection() as conn:
            rows = conn.execute(query + " GROUP BY namespace", params).fetchall()
        return {namespace: Decimal(total) for namespace, total in rows}

    def owner_usage(self, owner_uids: Collection[str]) -> dict[str, OwnerUsage]:
        """Per owner with events: its credit-seconds and GPU-seconds."""
        if not owner_uids:
            return {}
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT owner_uid, sum(credit_seconds), sum(seconds::bigint * gpu_count)"
                " FROM usage_events WHERE owner_uid = ANY(%s) GROUP BY owner_uid",
                (list(owner_uids),),
            ).fetchall()
        return {uid: OwnerUsage(Decimal(credit), int(gpu)) for uid, credit, gpu in rows}

    # --- requests served --------------------------------------------------------------------

    def record_requests(self, counts: Sequence[RequestCount]) -> None:
        """Record each serving container's count (the highest read per pod incarnation)."""
        if not counts:
            return
        rows = sorted(counts, key=lambda c: (c.pod_uid, c.incarnation))
        with self._connection() as conn:
            conn.execute(
                "INSERT INTO request_counts (pod_uid, incarnation, owner_uid, namespace,"
                " owner_name, requests, observed_at)"
                " SELECT * FROM unnest(%s::text[], %s::integer[], %s::text[], %s::text[],"
                " %s::text[], %s::bigint[], %s::timestamptz[])"
                " ON CONFLICT (pod_uid, incarnation) DO UPDATE SET"
                " requests = GREATEST(request_counts.requests, EXCLUDED.requests),"
                " observed_at = EXCLUDED.observed_at",
                ([c.pod_uid for c in rows], [c.incarnation for c in rows],
                 [c.owner_uid for c in rows], [c.namespace for c in rows],
                 [c.owner_name for c in rows], [c.requests for c in rows],
                 [_aware(c.observed_at, "observed_at") for c in rows]))

    def owner_requests(self, owner_uids: Collection[str]) -> dict[str, int]:
        """Requests served per owner with counts (all its pods, live and gone)."""
        if not owner_uids:
            return {}
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT owner_uid, sum(requests) FROM request_counts"
                " WHERE owner_uid = ANY(%s) GROUP BY owner_uid", (list(owner_uids),)).fetchall()
        return {uid: int(total) for uid, total in rows}

    # --- credit transactions --------------------------------------------------------------

    def record_transaction(self, budget: str, period_start: datetime.datetime, kind: str,
                           credits: int, key: str = "", note: str = "") -> bool:
        """Record a transaction once per ``(budget, period_start, kind, key)``; whether new."""
        if kind not in KINDS:
            raise ValueError(f"unknown transaction kind {kind!r}; one of {', '.join(KINDS)}")
        with self._connection() as conn:
            cur = conn.execute(
                "INSERT INTO credit_transactions (budget, period_start, kind, credits, key, note)"
                " VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (budget, period_start, kind, key) DO NOTHING",
                (budget, _aware(period_start, "period_start"), kind, credits, key, note),
            )
            return cur.rowcount == 1

    def record_adjustment(self, budget: str, period_start: datetime.datetime, kind: str,
                          credits: int, key: str, note: str = "") -> bool:
        """Record a refund, bonus or adjustment once per ``(budget, key)`` over all periods
        (in the period starting ``period_start`` when it is new); whether it was new."""
        if kind not in ADJUSTMENT_KINDS:
            raise ValueError(f"not an adjustment kind: {kind!r}")
        with self._connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                         (f"{budget}/{key}",))
            cur = conn.execute(
                "INSERT INTO credit_transactions (budget, period_start, kind, credits, key, note)"
                " SELECT %s, %s, %s, %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM"
                " credit_transactions WHERE budget = %s AND key = %s AND kind = ANY(%s))"
                " ON CONFLICT (budget, period_start, kind, key) DO NOTHING",
                (budget, _aware(period_start, "period_start"), kind, credits, key, note,
                 budget, key, list(ADJUSTMENT_KINDS)),
            )
            return cur.rowcount == 1

    def transactions(self, budget: str, period_start: datetime.datetime) -> list[Transaction]:
        """The transactions of a budget period, oldest first."""
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT kind, credits, key, note, created_at FROM credit_transactions"
                " WHERE budget = %s AND period_start = %s ORDER BY id",
                (budget, _aware(period_start, "period_start")),
            ).fetchall()
        return [Transaction(kind, int(credits), key, note, _utc(created))
                for kind, credits, key, note, created in rows]

    # --- connections ----------------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[_Conn]:
        try:
            conn = self._checkout()
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from exc
        try:
            yield conn
        except psycopg.OperationalError as exc:
            raise self._unavailable(exc) from exc
        finally:
            self._checkin(conn)

    def _checkout(self) -> _Conn:
        """An idle connection that answers a ping, else a new one."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None:
            try:
                conn.execute("")
                return conn
            except psycopg.Error:
                conn.close()
                self.close()  # the others most likely died with it (a server restart)
        return psycopg.connect(self._dsn, autocommit=True, **self._connect_args)

    def _checkin(self, conn: _Conn) -> None:
        healthy = (not conn.closed and not conn.broken
                   and conn.info.transaction_status == TransactionStatus.IDLE)
        if healthy:
            with self._lock:
                if len(self._idle) < MAX_IDLE:
                    self._idle.append(conn)
                    return
        conn.close()

    def _unavailable(self, exc: BaseException) -> LedgerUnavailable:
        lines = str(exc).strip().splitlines()
        reason = lines[0] if lines else type(exc).__name__
        message = f"ledger at {self._where} unavailable: {reason}"
        for secret in self._secrets:
            message = message.replace(secret, "***")
        return LedgerUnavailable(message)


def _columns(batch: Sequence[UsageSlice]) -> tuple[list[Any], ...]:
    """The batch as one list per column, in ``_INSERT_EVENTS``' order."""
    return (
        [s.pod.pod_uid for s in batch],
        [s.slot for s in batch],
        [_aware(s.start, "start") for s in batch],
        [_aware(s.end, "end") for s in batch],
        [s.seconds for s in batch],
        [s.pod.namespace for s in batch],
        [s.pod.owner_kind for s in batch],
        [s.pod.owner_name for s in batch],
        [s.pod.owner_uid for s in batch],
        [s.pod.pod_name for s in batch],
        [s.pod.gpu_type for s in batch],
        [s.pod.gpu_count for s in batch],
        [s.pod.cpu_millis for s in batch],
        [s.pod.memory_bytes for s in batch],
        [s.pod.storage_bytes for s in batch],
        [s.credit_seconds for s in batch],
        [s.budget for s in batch],
        [s.final for s in batch],
    )
