"""Artifact storage slices in a real ledger: the rows sum to the hand computation, exactly."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import partial

import psycopg
import pytest
from arclight.api.creditbudget import Rates
from arclight.clients.ledger import Ledger
from arclight.metering.pricing import credits
from arclight.metering.storage import claim_usage, credit_seconds
from arclight.metering.usage import slices

pytestmark = pytest.mark.ledger
GIB = 2**30
#: 10 credits per GiB-month: 0.013698630137 credits per GiB-hour (10 / 730, 12 places).
GIB_HOUR = Fraction("0.013698630137")


@pytest.fixture
def ledger(ledger_dsn: str) -> Iterator[Ledger]:
    with Ledger(ledger_dsn) as led:
        led.migrate()
        yield led


def claim(uid: str, size: str, created: str, deleted: str | None = None) -> dict:
    meta = {"name": f"claim-{uid}", "namespace": "team-a", "uid": uid,
            "creationTimestamp": created}
    if deleted:
        meta["deletionTimestamp"] = deleted
    return {"metadata": meta, "spec": {"resources": {"requests": {"storage": size}}}}


def test_storage_rows_sum_to_the_hand_computation(ledger: Ledger, ledger_dsn: str) -> None:
    price = partial(credit_seconds, Rates())  # the default: 10 credits per GiB-month
    # 500 GB (465.66128730773925781250 GiB) for 3 days 01:02:03 over the turn of the month,
    # written while it existed, then once it was deleted, then again (a retry)
    created, deleted = "2025-01-30T22:58:57Z", "2025-02-03T00:01:00Z"
    running = claim_usage(claim("c1", "500G", created))
    gone = claim_usage(claim("c1", "500G", created, deleted))
    now = datetime(2025, 2, 1, 12, tzinfo=UTC)
    first = slices(running, now, None, price, "b1")
    ledger.write(first)
    rest = slices(gone, now + timedelta(days=3), first[-1].end, price, "b1")
    ledger.write(rest)
    assert ledger.write(rest) == 0  # nothing twice
    # 2 GiB for 1,000 s, charged to no budget
    other = claim_usage(claim("c2", "2Gi", "2025-02-02T10:00:00Z", "2025-02-02T10:16:40Z"))
    ledger.write(slices(other, now + timedelta(days=3), None, price, None))

    size = Fraction(500 * 10**9, GIB)
    seconds = 3 * 86400 + 3600 + 2 * 60 + 3
    with psycopg.connect(ledger_dsn) as conn:
        rows = conn.execute(
            "SELECT pod_uid, owner_kind, owner_name, sum(seconds), min(storage_bytes),"
            " max(storage_bytes), bool_or(final), sum(cpu_millis + memory_bytes + gpu_count),"
            " sum(credit_seconds) FROM usage_events GROUP BY 1, 2, 3 ORDER BY 1").fetchall()
    assert [row[:-1] for row in rows] == [
        ("c1", "PersistentVolumeClaim", "claim-c1", seconds, 500 * 10**9, 500 * 10**9, True, 0),
        ("c2", "PersistentVolumeClaim", "claim-c2", 1000, 2 * GIB, 2 * GIB, True, 0)]
    assert Fraction(rows[0][-1]) == GIB_HOUR * size * seconds  # exact to the last digit
    assert Fraction(rows[1][-1]) == GIB_HOUR * 2 * 1000
    # the budget's February: from the 1st, 00:00 (the January part is 1 day 01:01:03)
    feb = ledger.budget_usage("b1", datetime(2025, 2, 1, tzinfo=UTC),
                              datetime(2025, 3, 1, tzinfo=UTC))
    hand = GIB_HOUR * size * (seconds - (86400 + 3600 + 60 + 3))
    assert Fraction(feb["team-a"]) == hand
    assert credits(feb["team-a"]) == math.floor(hand / 3600 + Fraction(1, 2)) == 306
    assert ledger.written_until(["c1"]) == {"c1": (gone.end, True)}
