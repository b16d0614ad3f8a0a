"""Usage events written per second into the ledger, against a plain COPY in the same run.

Starts its own Postgres server (tests/postgres.py, Debian's postgresql-15, fsync off), migrates
a fresh database, then for the same N usage slices (in batches):

- baseline: ``COPY`` into a table with the same columns and no index, key or conflict
  handling (the ceiling for getting these rows into this server from Python);
- ledger: ``Ledger.write`` (one ``INSERT .. SELECT FROM unnest(..) ON CONFLICT DO NOTHING``
  per batch, primary key and three indexes maintained);
- re-write: ``Ledger.write`` of the same slices again (every row a conflict, none new).

Prints events/s of each, the ledger's ratio to the baseline, and PASS/FAIL against the target
(at least 5,000 events/s). Run: ``.venv/bin/python tests/bench/bench_ledger.py [--events N]
[--batch B]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arclight.clients.ledger import Ledger
from arclight.metering.model import SLICE_SECONDS, PodUsage, UsageSlice
from postgres import PostgresServer

TARGET = 5000.0  # events/s
T0 = datetime(2025, 3, 1, tzinfo=UTC)
COLUMNS = ('pod_uid, slot, start, "end", seconds, namespace, owner_kind, owner_name, owner_uid,'
           " pod_name, gpu_type, gpu_count, cpu_millis, memory_bytes, credit_seconds, budget,"
           " final")


def make_slices(n: int, tag: str) -> list[UsageSlice]:
    """n slices: pods of 96 slices (a day) each, in 8 namespaces and 3 budgets."""
    out: list[UsageSlice] = []
    slot = timedelta(seconds=SLICE_SECONDS)
    for i in range(n):
        p, k = divmod(i, 96)
        pod = PodUsage(
            pod_uid=f"{tag}-{p:06d}-0000-4000-8000-000000000000", pod_name=f"run-{p}-trainer",
            namespace=f"team-{p % 8}", owner_kind="TrainingRun", owner_name=f"run-{p}",
            owner_uid=f"{tag}-owner-{p // 4}", cpu_millis=4000, memory_bytes=16 * 2**30,
            gpu_type="h100", gpu_count=1 + p % 8, start=T0, end=None)
        start = T0 + k * slot
        out.append(UsageSlice(
            pod=pod, slot=start, start=start, end=start + slot, seconds=SLICE_SECONDS,
            credit_seconds=Decimal(SLICE_SECONDS * (250 + p % 7)) / Decimal(3) ** (p % 3),
            budget=None if p % 3 == 0 else f"budget-{p % 3}", final=k == 95))
    return out


def row(s: UsageSlice) -> tuple[object, ...]:
    p = s.pod
    return (p.pod_uid, s.slot, s.start, s.end, s.seconds, p.namespace, p.owner_kind,
            p.owner_name, p.owner_uid, p.pod_name, p.gpu_type, p.gpu_count, p.cpu_millis,
            p.memory_bytes, s.credit_seconds, s.budget, s.final)


def copy_rate(dsn: str, slices: Sequence[UsageSlice], batch: int) -> float:
    """Events/s of a plain COPY per batch into the unindexed ``baseline_events``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        began = time.perf_counter()
        for first in range(0, len(slices), batch):
            with conn.cursor() as cur, cur.copy(
                    f"COPY baseline_events ({COLUMNS}) FROM STDIN") as copy:
                for s in slices[first:first + batch]:
                    copy.write_row(row(s))
        return len(slices) / (time.perf_counter() - began)


def ledger_rate(ledger: Ledger, slices: Sequence[UsageSlice], batch: int,
                expect_new: int) -> float:
    """Events/s of ``Ledger.write`` per batch (checks how many rows were new)."""
    began = time.perf_counter()
    new = sum(ledger.write(slices[first:first + batch])
              for first in range(0, len(slices), batch))
    elapsed = time.perf_counter() - began
    if new != expect_new:
        raise SystemExit(f"ledger.write stored {new} new rows, expected {expect_new}")
    return len(slices) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    with PostgresServer() as server:
        dsn = server.create_database("bench")
        with Ledger(dsn) as ledger, psycopg.connect(dsn, autocommit=True) as admin:
            ledger.migrate()
            admin.execute("CREATE TABLE baseline_events"
                          " (LIKE usage_events INCLUDING DEFAULTS)")
            warm = make_slices(4 * args.batch, "warm")  # warm both paths, then start empty
            copy_rate(dsn, warm, args.batch)
            ledger_rate(ledger, warm, args.batch, len(warm))
            admin.execute("TRUNCATE baseline_events, usage_events")
            admin.execute("VACUUM ANALYZE")

            slices = make_slices(args.events, "ev")
            baseline = copy_rate(dsn, slices, args.batch)
            first = ledger_rate(ledger, slices, args.batch, len(slices))
            again = ledger_rate(ledger, slices, args.batch, 0)
            stored = admin.execute("SELECT count(*) FROM usage_events").fetchone()
            assert stored is not None and stored[0] == len(slices)
    print(f"{args.events} usage events, batches of {args.batch}")
    print(f"baseline (COPY, no index, no conflict handling): {baseline:10,.0f} events/s")
    print(f"ledger write (ON CONFLICT DO NOTHING, new rows): {first:10,.0f} events/s"
          f"  ratio to baseline {first / baseline:.2f}")
    print(f"ledger re-write (all conflicts, none new):      {again:10,.0f} events/s"
          f"  ratio to baseline {again / baseline:.2f}")
    verdict = "PASS" if min(first, again) >= TARGET else "FAIL"
    print(f"target >= {TARGET:,.0f} events/s (write and re-write): {verdict}")
    print(f"load average after: {os.getloadavg()}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
