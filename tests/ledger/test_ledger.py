"""The ledger client against a real Postgres server (tests/postgres.py)."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import psycopg
import pytest
from alembic.script import ScriptDirectory
from arclight.clients.ledger import (
    KINDS,
    Ledger,
    LedgerUnavailable,
    OwnerUsage,
    alembic_config,
    sqlalchemy_url,
)
from arclight.metering.model import SLICE_SECONDS, PodUsage, UsageSlice
from postgres import PostgresServer
from psycopg.conninfo import conninfo_to_dict, make_conninfo

pytestmark = pytest.mark.ledger
#: The newest migration: every ledger the operator migrates is at it.
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

T0 = datetime(2025, 3, 1, tzinfo=UTC)
SLOT = timedelta(seconds=SLICE_SECONDS)


def pod(uid: str, *, namespace: str = "team-a", owner_uid: str = "run-1",
        gpu_count: int = 0) -> PodUsage:
    return PodUsage(
        pod_uid=uid, pod_name=f"pod-{uid}", namespace=namespace, owner_kind="TrainingRun",
        owner_name=f"run-{owner_uid}", owner_uid=owner_uid, cpu_millis=1500,
        memory_bytes=4 * 2**30, gpu_type="h100" if gpu_count else "none", gpu_count=gpu_count,
        start=T0, end=None,
    )


def usage(p: PodUsage, n: int, *, seconds: int = SLICE_SECONDS, budget: str | None = "b1",
          credit: Decimal = Decimal("1.5"), final: bool = False) -> UsageSlice:
    """The pod's n-th slice (from T0), ``seconds`` long."""
    slot = T0 + n * SLOT
    return UsageSlice(pod=p, slot=slot, start=slot, end=slot + timedelta(seconds=seconds),
                      seconds=seconds, credit_seconds=credit, budget=budget, final=final)


@pytest.fixture
def ledger(ledger_dsn: str) -> Iterator[Ledger]:
    with Ledger(ledger_dsn) as led:
        led.migrate()
        yield led


def query(dsn: str, sql: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params or None).fetchall()


def count(dsn: str, table: str = "usage_events") -> int:
    return int(query(dsn, f"SELECT count(*) FROM {table}")[0][0])


# --- schema -------------------------------------------------------------------------------


def test_migrate_creates_the_schema_and_is_idempotent(ledger_dsn: str) -> None:
    led = Ledger(ledger_dsn)
    led.migrate()
    led.migrate()
    led.close()
    tables = {r[0] for r in query(ledger_dsn, "SELECT tablename FROM pg_tables"
                                              " WHERE schemaname = 'public'")}
    assert tables == {"usage_events", "credit_transactions", "budget_notifications",
                      "request_counts", "ledger_alembic_version"}
    assert HEAD == "0004"
    assert query(ledger_dsn, "SELECT version_num FROM ledger_alembic_version") == [(HEAD,)]
    columns = dict(query(ledger_dsn, "SELECT column_name, data_type FROM information_schema"
                                     ".columns WHERE table_name = 'usage_events'"))
    assert columns["slot"] == columns["end"] == "timestamp with time zone"
    assert columns["credit_seconds"] == "numeric"
    assert {columns[c] for c in ("cpu_millis", "memory_bytes", "storage_bytes")} == {"bigint"}
    assert columns["seconds"] == columns["gpu_count"] == "integer"
    assert query(ledger_dsn, "SELECT numeric_precision FROM information_schema.columns"
                             " WHERE column_name = 'credit_seconds'") == [(None,)]
    indexes = dict(query(ledger_dsn, "SELECT indexname, indexdef FROM pg_indexes"
                                     " WHERE schemaname = 'public'"))
    assert "(pod_uid, slot)" in indexes["usage_events_pkey"]
    assert "(budget, slot)" in indexes["usage_events_budget_slot"]
    assert "(namespace, slot)" in indexes["usage_events_namespace_slot"]
    assert "(owner_uid)" in indexes["usage_events_owner_uid"]
    assert "UNIQUE" in indexes["credit_transactions_once"]
    assert "(budget, period_start, kind, key)" in indexes["credit_transactions_once"]


def test_two_replicas_migrate_at_once(ledger_dsn: str) -> None:
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            start.wait()
            with Ledger(ledger_dsn) as led:
                led.migrate()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert query(ledger_dsn, "SELECT version_num FROM ledger_alembic_version") == [(HEAD,)]
    assert count(ledger_dsn) == 0


def test_url_and_keyword_dsns(postgres: PostgresServer, ledger_dsn: str) -> None:
    url = sqlalchemy_url(ledger_dsn + "?sslmode=disable&application_name=arclight")
    assert (url.drivername, url.username, url.password, url.host, url.port) == (
        "postgresql+psycopg", "postgres", postgres.password, "127.0.0.1", postgres.port)
    assert url.database == ledger_dsn.rsplit("/", 1)[1]
    assert dict(url.query) == {"sslmode": "disable", "application_name": "arclight"}
    keywords = make_conninfo("", **conninfo_to_dict(ledger_dsn))
    assert "postgresql://" not in keywords
    assert sqlalchemy_url(keywords) == sqlalchemy_url(ledger_dsn)
    socket_url = sqlalchemy_url("host=/run/postgresql port=5433 dbname=ledger user=op")
    assert (socket_url.host, dict(socket_url.query)) == (
        None, {"host": "/run/postgresql", "port": "5433"})
    with Ledger(keywords) as led:  # the keyword form migrates and writes
        led.migrate()
        assert led.write([usage(pod("p1"), 0)]) == 1
    assert count(ledger_dsn) == 1


# --- usage events -------------------------------------------------------------------------


def test_write_is_idempotent(ledger: Ledger, ledger_dsn: str) -> None:
    p1, p2 = pod("p1"), pod("p2", namespace="team-b", owner_uid="run-2", gpu_count=2)
    slices = [usage(p1, n) for n in range(3)] + [usage(p2, n, budget=None) for n in range(2)]
    assert ledger.write(slices) == 5
    before = (ledger.budget_usage("b1", T0, None), ledger.owner_usage(["run-1", "run-2"]))
    assert ledger.write(slices) == 0
    assert ledger.write(list(reversed(slices)) + slices[:2]) == 0
    assert count(ledger_dsn) == 5
    assert (ledger.budget_usage("b1", T0, None), ledger.owner_usage(["run-1", "run-2"])) == before
    assert ledger.write(slices + [usage(p1, 3)]) == 1  # only the new one
    assert ledger.write([]) == 0
    row = query(ledger_dsn, 'SELECT pod_uid, slot, start, "end", seconds, namespace, owner_kind,'
                            " owner_name, owner_uid, pod_name, gpu_type, gpu_count, cpu_millis,"
                            " memory_bytes, credit_seconds, budget, final, recorded_at"
                            " FROM usage_events WHERE pod_uid = 'p2' AND slot = %s", T0 + SLOT)
    assert row[0][:17] == ("p2", T0 + SLOT, T0 + SLOT, T0 + 2 * SLOT, 900, "team-b",
                           "TrainingRun", "run-run-2", "run-2", "pod-p2", "h100", 2, 1500,
                           4 * 2**30, Decimal("1.5"), None, False)
    assert isinstance(row[0][17], datetime)


def test_a_batch_with_duplicates_and_no_budgets(ledger: Ledger, ledger_dsn: str) -> None:
    p = pod("p1")
    slices = [usage(p, n % 7, budget=None) for n in range(2500)]  # > one batch, 7 distinct
    assert ledger.write(slices) == 7
    assert count(ledger_dsn) == 7


def test_sums_are_exact_decimals(ledger: Ledger) -> None:
    parts = [Decimal("3600.000000000465661287307739257812"),
             Decimal("7200.000000000465661287307739257813"), Decimal(3600)]
    p = pod("p1")
    assert ledger.write([usage(p, n, credit=c) for n, c in enumerate(parts)]) == 3
    total = Decimal("14400.000000000931322574615478515625")
    with localcontext(prec=100):
        assert sum(parts) == total  # the premise (Python's default 28 digits would round)
    got = ledger.budget_usage("b1", T0, None)
    assert got == {"team-a": total}
    assert isinstance(got["team-a"], Decimal)
    assert str(got["team-a"]) == "14400.000000000931322574615478515625"
    assert ledger.owner_usage(["run-1"])["run-1"].credit_seconds == total
    tiny = [usage(pod("p2"), n, credit=Decimal("0.1")) for n in range(3)]
    ledger.write(tiny)
    assert ledger.owner_usage(["run-1"])["run-1"].credit_seconds == Decimal(
        "14400.300000000931322574615478515625")


def test_budget_usage_counts_slots_in_since_until(ledger: Ledger) -> None:
    a, b = pod("a"), pod("b", namespace="team-b")
    ledger.write([usage(a, n, credit=Decimal(10) ** n) for n in range(-1, 4)]  # T0-900 .. T0+2700
                 + [usage(b, 1, credit=Decimal("0.25")),
                    usage(b, 2, credit=Decimal(7), budget="other"),
                    usage(b, 3, credit=Decimal(9), budget=None)])
    since, until = T0, T0 + 2 * SLOT
    assert ledger.budget_usage("b1", since, until) == {"team-a": Decimal(11),
                                                        "team-b": Decimal("0.25")}
    assert ledger.budget_usage("b1", since, None) == {"team-a": Decimal(1111),
                                                       "team-b": Decimal("0.25")}
    assert ledger.budget_usage("b1", T0 - SLOT, T0) == {"team-a": Decimal("0.1")}
    assert ledger.budget_usage("b1", since + timedelta(seconds=1), until) == {
        "team-a": Decimal(10), "team-b": Decimal("0.25")}  # by slot, not by overlap
    assert ledger.budget_usage("other", T0, None) == {"team-b": Decimal(7)}
    assert ledger.budget_usage("b1", until + 10 * SLOT, None) == {}
    berlin = since.astimezone(ZoneInfo("Europe/Berlin"))
    assert ledger.budget_usage("b1", berlin, until) == ledger.budget_usage("b1", since, until)
    with pytest.raises(ValueError, match="aware"):
        ledger.budget_usage("b1", since.replace(tzinfo=None), None)


def test_written_until(ledger: Ledger) -> None:
    running, ended = pod("running"), pod("ended")
    ledger.write([usage(running, 0), usage(running, 1, seconds=300),
                  usage(ended, 0), usage(ended, 1, seconds=42, final=True)])
    got = ledger.written_until(["running", "ended", "unknown"])
    assert got == {"running": (T0 + SLOT + timedelta(seconds=300), False),
                   "ended": (T0 + SLOT + timedelta(seconds=42), True)}
    assert all(end.tzinfo is UTC for end, _ in got.values())
    assert ledger.written_until([]) == {}


def test_owner_usage_gpu_seconds(ledger: Ledger) -> None:
    trainer = pod("t1", owner_uid="run-1", gpu_count=8)
    helper = pod("t2", owner_uid="run-1", gpu_count=0)
    server = pod("s1", owner_uid="dep-1", gpu_count=1, namespace="team-b")
    ledger.write([usage(trainer, 0), usage(trainer, 1, seconds=100, credit=Decimal(2)),
                  usage(helper, 0, credit=Decimal("0.5")),
                  usage(server, 0, seconds=60, budget=None)])
    assert ledger.owner_usage(["run-1", "dep-1", "nobody"]) == {
        "run-1": OwnerUsage(credit_seconds=Decimal("4.0"), gpu_seconds=8 * 900 + 8 * 100),
        "dep-1": OwnerUsage(credit_seconds=Decimal("1.5"), gpu_seconds=60),
    }
    assert ledger.owner_usage([]) == {}


# --- credit transactions ------------------------------------------------------------------


def test_transactions_are_idempotent(ledger: Ledger, ledger_dsn: str) -> None:
    period = T0
    assert ledger.record_transaction("b1", period, "grant", 10_000, note="monthly")
    assert not ledger.record_transaction("b1", period, "grant", 10_000, note="again")
    assert ledger.record_transaction("b1", period, "refund", 250, key="pod-p1", note="oom")
    assert ledger.record_transaction("b1", period, "refund", 100, key="pod-p2")
    assert not ledger.record_transaction("b1", period, "refund", 999, key="pod-p1")
    assert ledger.record_transaction("b1", period + timedelta(days=31), "grant", 10_000)
    assert ledger.record_transaction("b2", period, "adjustment", -300)
    got = ledger.transactions("b1", period)
    assert [(t.kind, t.credits, t.key, t.note) for t in got] == [
        ("grant", 10_000, "", "monthly"), ("refund", 250, "pod-p1", "oom"),
        ("refund", 100, "pod-p2", "")]
    assert all(t.created_at.tzinfo is UTC for t in got)
    assert abs(got[0].created_at - datetime.now(UTC)) < timedelta(minutes=5)
    assert ledger.transactions("b1", period + timedelta(days=1)) == []
    assert count(ledger_dsn, "credit_transactions") == 5
    for kind in KINDS:
        assert ledger.record_transaction("b3", period, kind, 1)
    with pytest.raises(ValueError, match="unknown transaction kind"):
        ledger.record_transaction("b3", period, "gift", 1)
    with pytest.raises(psycopg.errors.CheckViolation):  # the database refuses it too
        query(ledger_dsn, "INSERT INTO credit_transactions (budget, period_start, kind, credits)"
                          " VALUES ('b3', now(), 'gift', 1)")


# --- failures and concurrency -------------------------------------------------------------


def test_postgres_down_then_back() -> None:
    with PostgresServer() as server:  # its own server: stopping it disturbs no other test
        dsn = server.create_database("ledger")
        led = Ledger(dsn)
        led.migrate()
        assert led.write([usage(pod("p1"), 0)]) == 1
        server.stop()
        calls = [
            lambda: led.write([usage(pod("p1"), 1)]),
            lambda: led.written_until(["p1"]),
            lambda: led.budget_usage("b1", T0, None),
            lambda: led.owner_usage(["run-1"]),
            lambda: led.record_transaction("b1", T0, "grant", 1),
            lambda: led.transactions("b1", T0),
            led.migrate,
        ]
        for call in calls:
            began = time.monotonic()
            with pytest.raises(LedgerUnavailable) as raised:
                call()
            assert time.monotonic() - began < 6
            message = str(raised.value)
            assert "\n" not in message
            assert server.password not in message
            assert quote(server.password, safe="") not in message
            assert f"127.0.0.1:{server.port}/ledger" in message
        server.start()
        assert led.write([usage(pod("p1"), 1)]) == 1  # the same object, reconnected
        assert led.written_until(["p1"]) == {"p1": (T0 + 2 * SLOT, False)}
        server.restart()  # idle connections die with the server: pinged, replaced
        assert led.record_transaction("b1", T0, "grant", 1)
        assert led.owner_usage(["run-1"])["run-1"].credit_seconds == Decimal("3.0")
        led.close()


def test_concurrent_overlapping_writers(ledger: Ledger, ledger_dsn: str) -> None:
    pods = [pod(f"p{i}", owner_uid=f"run-{i % 5}") for i in range(60)]
    every = [usage(p, n) for p in pods for n in range(50)]  # 3,000 distinct slices
    shares = [random.Random(seed).sample(every, 2000) for seed in range(3)]  # overlapping,
    union = {(s.pod.pod_uid, s.slot) for share in shares for s in share}    # shuffled
    start = threading.Barrier(3)
    news: list[int] = []
    errors: list[BaseException] = []

    def writer(mine: list[UsageSlice]) -> None:
        try:
            start.wait()
            news.append(sum(ledger.write(mine[i:i + 400]) for i in range(0, len(mine), 400)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(share,)) for share in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert len(news) == 3
    assert sum(news) == count(ledger_dsn) == len(union)
    assert ledger.write(every) == 3000 - len(union)  # the rest, once
    assert count(ledger_dsn) == 3000
    assert ledger.owner_usage(["run-0"])["run-0"].credit_seconds == 12 * 50 * Decimal("1.5")


def test_a_late_reported_end_corrects_what_was_written_past_it(ledger: Ledger,
                                                              ledger_dsn: str) -> None:
    """Three whole slots were written while the pod looked running; its end, reported late,
    lies 100 s into the second: the ledger keeps 900 + 100 seconds, and stays so."""
    p = pod("late")
    ledger.write([usage(p, n) for n in range(3)])
    ended = dataclasses.replace(p, end=T0 + SLOT + timedelta(seconds=100))
    final = usage(ended, 1, seconds=100, credit=Decimal("0.25"), final=True)
    for _ in range(2):  # twice: the correction is idempotent
        ledger.write([final])
        rows = query(ledger_dsn, "SELECT slot, seconds, credit_seconds, final FROM usage_events"
                     " ORDER BY slot")
        assert rows == [(T0, SLICE_SECONDS, Decimal("1.5"), False),
                        (T0 + SLOT, 100, Decimal("0.25"), True)]
    # a replica that still thinks it runs writes nothing more for it
    ledger.write([usage(p, 3)])
    assert count(ledger_dsn) == 2
