"""Artifact storage in the metering room: which claims, their usage, the exact GiB-month price.

The hand computation: the GiB-hour rate is ``storageGiBMonth / 730`` rounded half up to 12
places (the one documented rounding of a price); a claim's credit-seconds are that rate ×
GiB × seconds, exactly; a figure is their sum / 3600 rounded once, half up.
"""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction
from functools import partial
from typing import Any

import pytest
from arclight.api.creditbudget import Period, Rates
from arclight.metering.model import UsageSlice
from arclight.metering.periods import window
from arclight.metering.pricing import DEFAULT_RATES, credits
from arclight.metering.storage import (
    claim_usage,
    credit_seconds,
    gib_hour_rate,
    is_metered,
    named_claims,
)
from arclight.metering.usage import GRACE_SECONDS, slices, unwritten_seconds
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

GIB = 2**30
CREATED = datetime(2025, 1, 31, 23, 47, 13, tzinfo=UTC)


def hand_rate(month_rate: str | int) -> Decimal:
    """The GiB-hour rate by hand: decimal division at 50 digits, then half up to 12 places."""
    with localcontext() as ctx:
        ctx.prec = 50
        return (Decimal(month_rate) / 730).quantize(Decimal("1e-12"), rounding=ROUND_HALF_UP)


def total(cut: list[UsageSlice]) -> Fraction:
    """The exact sum of the slices (as Postgres' NUMERIC sums them; no 28-digit context)."""
    return sum((Fraction(s.credit_seconds) for s in cut), Fraction(0))


def claim(size: str = "10Gi", *, deleted: str | None = None, name: str = "artifacts",
          namespace: str = "team-a", finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                            "creationTimestamp": "2025-01-31T23:47:13Z",
                            "finalizers": finalizers or ["kubernetes.io/pvc-protection"]}
    if deleted:
        meta["deletionTimestamp"] = deleted
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta,
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": size}}},
            "status": {"phase": "Pending"}}


@pytest.mark.parametrize(("month", "hour"), [
    (10, "0.013698630137"),     # the default: 10 / 730 = 0.013698630136986...
    (73000, "100"),             # a multiple of 73 divides exactly
    ("0.5", "0.000684931507"),
    ("0.000000000365", "0.000000000001"),  # exactly half a last place: rounds up
    ("0.000000000364", "0"),
    (0, "0"),
])
def test_gib_hour_rate_rounds_once_half_up_to_12_places(month: str | int, hour: str) -> None:
    rate = gib_hour_rate(Rates(storage_gib_month=month))
    assert rate == Decimal(hour) == hand_rate(month)
    assert DEFAULT_RATES.storage_gib_month == 10


def test_price_is_exact() -> None:
    usage = claim_usage(claim("1Gi"))
    hundred = Rates(storage_gib_month=73000)  # 100 credits per GiB-hour
    assert credit_seconds(hundred, usage, 3600) == 360_000 and credits(Decimal(360_000)) == 100
    odd = claim_usage(claim("1.5Gi"))
    assert credit_seconds(DEFAULT_RATES, odd, 7) == Decimal("0.013698630137") * Decimal(
        "1.5") * 7
    byte = claim_usage(claim("1"))
    assert Fraction(credit_seconds(DEFAULT_RATES, byte, 1)) == Fraction("0.013698630137") / GIB
    with pytest.raises(ValueError, match="negative"):
        credit_seconds(DEFAULT_RATES, usage, -1)


def test_claim_usage_from_the_claim_json() -> None:
    live = claim_usage(claim("500M"))
    assert (live.pod_uid, live.pod_name, live.namespace) == ("uid-artifacts", "artifacts",
                                                             "team-a")
    assert (live.owner_kind, live.owner_name, live.owner_uid) == (
        "PersistentVolumeClaim", "artifacts", "uid-artifacts")
    assert (live.storage_bytes, live.cpu_millis, live.memory_bytes, live.gpu_count) == (
        500 * 10**6, 0, 0, 0)
    assert live.start == CREATED and live.end is None
    gone = claim_usage(claim("2Gi", deleted="2025-02-01T00:20:00Z"))
    assert gone.end == datetime(2025, 2, 1, 0, 20, tzinfo=UTC) and gone.storage_bytes == 2 * GIB
    assert claim_usage(claim("0.3")).storage_bytes == 1  # bytes round up
    with pytest.raises(ValueError, match="quantity"):
        claim_usage(claim("ten gigs"))
    unborn = claim()
    del unborn["metadata"]["creationTimestamp"]
    with pytest.raises(ValueError, match="creationTimestamp"):
        claim_usage(unborn)


def test_a_claim_over_a_period_boundary_is_split_exactly() -> None:
    """Created 23:47:13 on Jan 31, deleted 00:20:00 on Feb 1 (monthly periods, UTC)."""
    usage = claim_usage(claim("10Gi", deleted="2025-02-01T00:20:00Z"))
    price = partial(credit_seconds, DEFAULT_RATES)
    now = datetime(2025, 2, 1, 1, tzinfo=UTC)
    cut = slices(usage, now, None, price, "team-a")
    assert [s.seconds for s in cut] == [767, 900, 300] and cut[-1].final
    assert sum(s.seconds for s in cut) == 33 * 60 - 13
    january = window(Period(), datetime(2025, 1, 31, tzinfo=UTC), CREATED)
    in_january = [s for s in cut if january.contains(s.slot)]
    assert total(in_january) == Fraction(hand_rate(10)) * 10 * 767
    assert total(cut) == Fraction(hand_rate(10)) * 10 * 1967


def test_a_running_claim_then_its_deletion_add_up_to_its_whole_life() -> None:
    rates = Rates(storage_gib_month=73000)
    price = partial(credit_seconds, rates)
    running = claim_usage(claim("3Gi"))
    now = CREATED + timedelta(hours=5)
    first = slices(running, now, None, price, "b")
    assert first and not any(s.final for s in first)
    assert first[-1].end <= now - timedelta(seconds=GRACE_SECONDS)
    assert unwritten_seconds(running, now, first[-1].end) == (now - first[-1].end).seconds
    gone = claim_usage(claim("3Gi", deleted="2025-02-01T07:00:01Z"))
    rest = slices(gone, now + timedelta(hours=3), first[-1].end, price, "b")
    assert rest[-1].final and rest[-1].end == gone.end
    lived = int((gone.end - CREATED).total_seconds())  # type: ignore[operator]
    assert total(first + rest) == 100 * 3 * lived
    assert credits(Decimal(100 * 3 * lived)) == round(300 * lived / 3600)
    assert slices(gone, now + timedelta(hours=4), rest[-1].end, price, "b")[0].seconds == 0


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(size=st.integers(0, 2**44), seconds=st.integers(0, 90 * 86400),
       month=st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False))
def test_slices_sum_to_the_hand_computation(size: int, seconds: int, month: Decimal) -> None:
    rates = Rates(storage_gib_month=str(month))
    end = CREATED + timedelta(seconds=seconds)
    usage = claim_usage(claim(str(size), deleted=end.strftime("%Y-%m-%dT%H:%M:%SZ")))
    cut = slices(usage, end, None, partial(credit_seconds, rates), None)
    assert total(cut) == Fraction(hand_rate(str(month))) * size * seconds / GIB


def test_which_claims_are_metered() -> None:
    runs = [{"metadata": {"namespace": "team-a"}, "spec": {"checkpoint": {"uri": "pvc://ckpt/x"}}},
            {"metadata": {"namespace": "team-b"}, "spec": {"checkpoint": {"uri": "pvc://other"}}},
            {"metadata": {"namespace": "elsewhere"}, "spec": {"checkpoint": {"uri": "pvc://no"}}},
            {"metadata": {"namespace": "team-a"}, "spec": {}}]
    named = named_claims({"team-a", "team-b"}, "artifacts", runs)
    assert named == {("team-a", "artifacts"), ("team-b", "artifacts"), ("team-a", "ckpt"),
                     ("team-b", "other")}
    assert named_claims({"team-a"}, None, runs) == {("team-a", "ckpt")}
    assert is_metered(claim(name="ckpt"), named)
    assert not is_metered(claim(name="scratch"), named)
    assert not is_metered(claim(namespace="elsewhere"), named)
    # metered once: its finalizer keeps it metered until it is deleted
    assert is_metered(claim(name="scratch", finalizers=["arclight.dev/metering"]), named)
