"""The metering room: budget periods, exact prices, pod usage from pod JSON, usage slices.

Table tests pin the examples (DST changes, odd offsets, the one rounding); property tests
check that windows tile time on slot boundaries and that slices add up exactly and come out
the same however often the meter writes.
"""
from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from arclight.api.creditbudget import GpuHourRates, Period, Rates
from arclight.metering import pricing
from arclight.metering.model import SLICE_SECONDS, PodUsage
from arclight.metering.periods import Window, previous, slot_of, window
from arclight.metering.pricing import DEFAULT_RATES, credit_seconds, credits, hourly_rate
from arclight.metering.usage import (
    GRACE_SECONDS,
    parse_quantity,
    pod_usage,
    slices,
    unwritten_seconds,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

GIB = 2**30
ORIGIN = datetime(2020, 1, 1, tzinfo=UTC)
EARLY = datetime(1990, 1, 1, tzinfo=UTC)
NINE = datetime(2024, 5, 1, 9, tzinfo=UTC)


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def period(kind: str = "monthly", reset_day: int = 1, tz: str = "UTC") -> Period:
    return Period(type=kind, reset_day=reset_day, time_zone=tz)


# --- periods -------------------------------------------------------------------------------

def test_slot_of_floors_to_900_seconds_in_utc() -> None:
    assert slot_of(utc(2024, 5, 1, 9, 14, 59, 999999)) == utc(2024, 5, 1, 9, 0)
    assert slot_of(utc(2024, 5, 1, 9, 15)) == utc(2024, 5, 1, 9, 15)
    kathmandu = datetime(2024, 5, 1, 12, 0, tzinfo=ZoneInfo("Asia/Kathmandu"))  # 06:15Z
    assert slot_of(kathmandu) == utc(2024, 5, 1, 6, 15)
    assert slot_of(kathmandu).tzinfo is UTC
    with pytest.raises(ValueError, match="time zone"):
        slot_of(datetime(2024, 5, 1))


@pytest.mark.parametrize(("p", "at", "start", "end"), [
    # resetDay 15 in Berlin, across the October DST change (CEST -> CET): 31 days + 1 h.
    (period("monthly", 15, "Europe/Berlin"), utc(2024, 10, 27, 12),
     utc(2024, 10, 14, 22), utc(2024, 11, 14, 23)),
    (period("monthly", 15, "Europe/Berlin"), utc(2024, 10, 14, 21, 59, 59),
     utc(2024, 9, 14, 22), utc(2024, 10, 14, 22)),
    # New York across March (EST -> EDT on 2024-03-10): 29 days - 1 h.
    (period("monthly", 15, "America/New_York"), utc(2024, 3, 12),
     utc(2024, 2, 15, 5), utc(2024, 3, 15, 4)),
    (period("monthly", 1, "UTC"), utc(2024, 2, 29, 23, 59), utc(2024, 2, 1), utc(2024, 3, 1)),
    (period("monthly", 28, "UTC"), utc(2024, 12, 31), utc(2024, 12, 28), utc(2025, 1, 28)),
    (period("monthly", 5, "UTC"), utc(2025, 1, 2), utc(2024, 12, 5), utc(2025, 1, 5)),
    # Kathmandu is +05:45: midnight there is 18:15Z, still a slot boundary.
    (period("daily", 1, "Asia/Kathmandu"), utc(2024, 5, 1, 12),
     utc(2024, 4, 30, 18, 15), utc(2024, 5, 1, 18, 15)),
    (period("monthly", 10, "Asia/Kathmandu"), utc(2024, 5, 1),
     utc(2024, 4, 9, 18, 15), utc(2024, 5, 9, 18, 15)),
    # Weekly: 2024-05-01 is a Wednesday; resetDay 1 = Monday, 7 = Sunday.
    (period("weekly", 1, "UTC"), utc(2024, 5, 1, 8), utc(2024, 4, 29), utc(2024, 5, 6)),
    (period("weekly", 3, "UTC"), utc(2024, 5, 1), utc(2024, 5, 1), utc(2024, 5, 8)),
    (period("weekly", 7, "Europe/Berlin"), utc(2024, 3, 30, 12),
     utc(2024, 3, 23, 23), utc(2024, 3, 30, 23)),
    (period("weekly", 1, "Europe/Berlin"), utc(2024, 3, 31, 12),
     utc(2024, 3, 24, 23), utc(2024, 3, 31, 22)),
    (period("daily", 1, "UTC"), utc(2024, 5, 1, 23, 59, 59), utc(2024, 5, 1), utc(2024, 5, 2)),
    # Santiago's spring-forward skips midnight (24:00 -> 01:00): the day starts at 01:00.
    (period("daily", 1, "America/Santiago"), utc(2024, 9, 8, 12),
     utc(2024, 9, 8, 4), utc(2024, 9, 9, 3)),
    # Santiago's fall-back repeats 23:00-24:00: midnight happens once, at the second pass.
    (period("daily", 1, "America/Santiago"), utc(2024, 4, 6, 12),
     utc(2024, 4, 6, 3), utc(2024, 4, 7, 4)),
    # Apia skipped 2011-12-30 entirely: a period from that day starts on the 31st.
    (period("weekly", 5, "Pacific/Apia"), utc(2011, 12, 31, 12),
     utc(2011, 12, 30, 10), utc(2012, 1, 5, 10)),
    (period("daily", 1, "Pacific/Apia"), utc(2011, 12, 30, 9, 59, 59),
     utc(2011, 12, 29, 10), utc(2011, 12, 30, 10)),
])
def test_window(p: Period, at: datetime, start: datetime, end: datetime) -> None:
    win = window(p, at, ORIGIN)
    assert (win.start, win.end) == (start, end)
    assert win.contains(at)
    assert slot_of(win.start) == win.start and win.end is not None and slot_of(win.end) == win.end


def test_monthly_across_dst_lengths() -> None:
    berlin = window(period("monthly", 15, "Europe/Berlin"), utc(2024, 10, 27, 12), ORIGIN)
    assert berlin.seconds == 31 * 86400 + 3600
    new_york = window(period("monthly", 15, "America/New_York"), utc(2024, 3, 12), ORIGIN)
    assert new_york.seconds == 29 * 86400 - 3600


@pytest.mark.parametrize(("tz", "day", "hours"), [
    ("Europe/Berlin", utc(2024, 3, 31, 12), 23),
    ("Europe/Berlin", utc(2024, 10, 27, 12), 25),
    ("America/New_York", utc(2024, 3, 10, 12), 23),
    ("America/New_York", utc(2024, 11, 3, 12), 25),
    ("Australia/Lord_Howe", utc(2024, 4, 6, 20), 24.5),  # a 30-minute DST change
    ("Europe/Berlin", utc(2024, 6, 1, 12), 24),
])
def test_daily_window_on_dst_days(tz: str, day: datetime, hours: float) -> None:
    assert window(period("daily", 1, tz), day, ORIGIN).seconds == hours * 3600


def test_none_period_is_open_from_the_origin_slot() -> None:
    origin = utc(2024, 5, 1, 9, 10, 7)
    win = window(period("none"), utc(2030, 1, 1), origin)
    assert win == Window(utc(2024, 5, 1, 9), None)
    assert win.seconds is None and win.elapsed_fraction(utc(2030, 1, 1)) is None
    assert win.contains(utc(2099, 1, 1)) and not win.contains(utc(2024, 5, 1, 8, 59))
    assert previous(period("none"), win, origin) is None


def test_previous() -> None:
    p = period("monthly", 15, "Europe/Berlin")
    origin = utc(2024, 9, 20)
    win = window(p, utc(2024, 11, 1), origin)
    before = previous(p, win, origin)
    assert before == Window(utc(2024, 9, 14, 22), utc(2024, 10, 14, 22))
    assert previous(p, before, origin) is None  # it would start before the origin's period
    daily = period("daily", 1, "Europe/Berlin")
    day = window(daily, utc(2024, 3, 31, 12), ORIGIN)
    assert previous(daily, day, ORIGIN) == Window(utc(2024, 3, 29, 23), utc(2024, 3, 30, 23))


def test_window_elapsed_fraction_and_contains() -> None:
    win = Window(utc(2024, 5, 1), utc(2024, 5, 2))
    assert win.elapsed_fraction(utc(2024, 5, 1, 6)) == Fraction(1, 4)
    assert win.elapsed_fraction(utc(2024, 4, 1)) == 0
    assert win.elapsed_fraction(utc(2024, 6, 1)) == 1
    assert win.contains(utc(2024, 5, 1)) and not win.contains(utc(2024, 5, 2))
    assert win.seconds == 86400
    with pytest.raises(ValueError, match="not after"):
        Window(utc(2024, 5, 2), utc(2024, 5, 1))


@pytest.mark.parametrize("tz", ["Mars/Olympus", "Europe", "../etc/passwd", "utc+2"])
def test_invalid_time_zone_names_the_field(tz: str) -> None:
    with pytest.raises(ValueError, match=r"spec\.period\.timeZone.*Europe/Berlin"):
        window(period("daily", 1, tz), utc(2024, 5, 1), ORIGIN)


ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "America/Santiago",
         "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Tehran", "America/Havana",
         "Asia/Kolkata", "America/St_Johns", "Africa/Casablanca"]


@st.composite
def periods_strategy(draw: st.DrawFn) -> Period:
    kind = draw(st.sampled_from(["monthly", "weekly", "daily"]))
    day = draw(st.integers(1, 7 if kind == "weekly" else 28))
    return period(kind, day, draw(st.sampled_from(ZONES)))


instants = st.datetimes(datetime(2000, 1, 1), datetime(2037, 12, 31), timezones=st.just(UTC))


@examples(400)
@given(p=periods_strategy(), at=instants)
def test_windows_tile_time_on_slots_and_local_midnights(p: Period, at: datetime) -> None:
    win = window(p, at, ORIGIN)
    assert win.contains(at) and win.end is not None
    assert slot_of(win.start) == win.start and slot_of(win.end) == win.end
    zone = ZoneInfo(p.time_zone)
    local = win.start.astimezone(zone)
    assert (win.start - timedelta(seconds=1)).astimezone(zone).date() < local.date()
    if p.type == "monthly":
        assert local.day == p.reset_day
    elif p.type == "weekly":
        assert local.isoweekday() == p.reset_day
    after = window(p, win.end, ORIGIN)
    assert after.start == win.end
    assert previous(p, after, EARLY) == win
    assert window(p, win.end - timedelta(microseconds=1), ORIGIN) == win
    assert (previous(p, win, win.start) is None) and previous(p, after, at) == win


# --- pricing -------------------------------------------------------------------------------

def usage_of(cpu_millis: int = 0, memory_bytes: int = 0, gpu_type: str = "none",
             gpu_count: int = 0, start: datetime = NINE,
             end: datetime | None = None) -> PodUsage:
    return PodUsage("uid-1", "pod-1", "team-a", "TrainingRun", "run-1", "run-uid", cpu_millis,
                    memory_bytes, gpu_type, gpu_count, start, end)


def test_pricing_examples() -> None:
    assert credits(credit_seconds(DEFAULT_RATES, usage_of(cpu_millis=2000), 3600)) == 8
    memory = credit_seconds(DEFAULT_RATES, usage_of(memory_bytes=3 * GIB), 1800)
    assert memory == Decimal(2700) and credits(memory) == 1  # 0.75 credits
    a100 = credit_seconds(DEFAULT_RATES, usage_of(gpu_type="a100", gpu_count=2), 90)
    assert a100 / 3600 == Decimal("1.75") and credits(a100) == 2
    one_per_hour = Rates(cpu_hour=1)
    pod = usage_of(cpu_millis=1000)
    total = sum((credit_seconds(one_per_hour, pod, 1) for _ in range(3600)), Decimal(0))
    assert total == 3600 and credits(total) == 1


def test_hourly_rate_is_exact() -> None:
    assert hourly_rate(DEFAULT_RATES, "h100", 8, 96_000, 1024 * GIB) == 8 * 75 + 96 * 4 + 512
    tiny = hourly_rate(DEFAULT_RATES, "none", 0, 1, 1)  # 1 millicore, 1 byte
    assert Fraction(tiny) == Fraction(4, 1000) + Fraction(1, 2**31)
    assert hourly_rate(DEFAULT_RATES, "t4", 0, 0, 0) == 0  # no GPUs: no GPU part
    assert hourly_rate(DEFAULT_RATES, "unknown", 0, 0, 0) == 0
    rates = Rates(gpu_hour=GpuHourRates(l4="9.125"), cpu_hour="0.1", memory_gib_hour="1e-1")
    assert hourly_rate(rates, "l4", 3, 250, 512 * 2**20) == Decimal("27.375") + Decimal("0.075")
    with pytest.raises(ValueError, match="unknown"):
        hourly_rate(DEFAULT_RATES, "unknown", 1, 0, 0)
    with pytest.raises(ValueError, match="negative"):
        credit_seconds(DEFAULT_RATES, usage_of(), -1)
    assert pricing.DEFAULT_RATES == Rates()


@pytest.mark.parametrize(("total", "expected"), [
    ("0", 0), ("1799.999", 0), ("1800", 1), ("5400", 2), ("9000", 3), ("1", 0),
    ("3600", 1), ("12345678.9", 3429), ("-1800", -1), ("-1799", 0),
])
def test_credits_rounds_once_half_up(total: str, expected: int) -> None:
    assert credits(Decimal(total)) == expected


@examples(200)
@given(cents=st.lists(st.integers(0, 10**6), max_size=50))
def test_credits_of_a_sum_is_one_rounding(cents: list[int]) -> None:
    total = sum((Decimal(c) / 100 for c in cents), Decimal(0))
    exact = Fraction(sum(cents), 100 * 3600)
    assert abs(credits(total) - exact) <= Fraction(1, 2)


# --- quantities and pods -------------------------------------------------------------------

@pytest.mark.parametrize(("q", "expected"), [
    ("500m", "0.5"), ("2", "2"), ("1.5", "1.5"), ("4Gi", 4 * GIB), ("512Mi", 512 * 2**20),
    ("1G", 10**9), ("1e3", 1000), ("100k", 100_000), ("1Ki", 1024), ("2Ti", 2 * 2**40),
    ("1Pi", 2**50), ("1Ei", 2**60), ("10n", "1e-8"), ("5u", "0.000005"), ("1M", 10**6),
    ("3T", 3 * 10**12), ("1P", 10**15), ("1E", 10**18), ("1.5e-3", "0.0015"), ("2E3", 2000),
    (".5", "0.5"), ("5.", 5), ("+1", 1), ("-1", -1), ("0.1Gi", Decimal("0.1") * GIB),
    (3, 3), ("1m", "0.001"),
])
def test_parse_quantity(q: str | int, expected: int | str) -> None:
    assert parse_quantity(q) == Decimal(expected)


@pytest.mark.parametrize("q", ["", "abc", "1.2.3", "1 Gi", " 1", "Gi", "1g", "1KiB", "1ki",
                               "e3", "1e", "nan", "inf", "1e1.5", True, 1.5, None, "1Gi "])
def test_parse_quantity_rejects(q: Any) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(q)


def pod(*, containers: list[dict[str, Any]] | None = None,
        init: list[dict[str, Any]] | None = None, labels: dict[str, str] | None = None,
        status: dict[str, Any] | None = None, node_selector: dict[str, str] | None = None,
        deletion: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "run-1-trainer-abcde", "namespace": "team-a", "uid": "pod-uid",
        "labels": {"arclight.dev/owner-kind": "TrainingRun", "arclight.dev/owner-name": "run-1",
                   "arclight.dev/owner-uid": "run-uid", **(labels or {})},
    }
    if deletion:
        meta["deletionTimestamp"] = deletion
    spec: dict[str, Any] = {"containers": containers or [
        {"name": "trainer", "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}]}
    if init is not None:
        spec["initContainers"] = init
    if node_selector is not None:
        spec["nodeSelector"] = node_selector
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
            "status": {"phase": "Running", "startTime": "2024-05-01T09:10:07Z"}
            if status is None else status}


def running(name: str = "trainer") -> dict[str, Any]:
    return {"name": name, "state": {"running": {"startedAt": "2024-05-01T09:10:09Z"}}}


def terminated(finished: str | None, name: str = "trainer") -> dict[str, Any]:
    term = {"exitCode": 0, "finishedAt": finished} if finished else {"exitCode": 137}
    return {"name": name, "state": {"terminated": term}}


def test_pod_usage_of_a_running_pod() -> None:
    got = pod_usage(pod(status={"phase": "Running", "startTime": "2024-05-01T09:10:07Z",
                                "containerStatuses": [running()]}))
    assert got == PodUsage("pod-uid", "run-1-trainer-abcde", "team-a", "TrainingRun", "run-1",
                           "run-uid", 2000, 4 * GIB, "none", 0, utc(2024, 5, 1, 9, 10, 7), None)


def test_pod_usage_effective_requests_with_init_containers() -> None:
    got = pod_usage(pod(
        init=[{"name": "fetch", "resources": {"requests": {"cpu": "3", "memory": "1Gi"}}},
              {"name": "warm", "resources": {"limits": {"cpu": "250m", "memory": "8Gi"}}}],
        containers=[{"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "256Mi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "700m", "memory": "1.5Gi"},
                                                "limits": {"cpu": "4"}}},
                    {"name": "c"}]))
    assert got is not None
    assert (got.cpu_millis, got.memory_bytes) == (3000, 8 * GIB)


def test_pod_usage_sidecar_init_containers_add_to_the_app_containers() -> None:
    got = pod_usage(pod(
        init=[{"name": "proxy", "restartPolicy": "Always",
               "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
              {"name": "setup", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}],
        containers=[{"name": "a", "resources": {"requests": {"cpu": "1500m", "memory": "3Gi"}}}]))
    assert got is not None
    assert (got.cpu_millis, got.memory_bytes) == (3000, 4 * GIB)


def test_pod_usage_limits_only_and_rounding_up() -> None:
    got = pod_usage(pod(containers=[
        {"name": "a", "resources": {"limits": {"cpu": "1", "memory": "2Gi"}}},
        {"name": "b", "resources": {"requests": {"cpu": "0.0001", "memory": "1.5"}}}]))
    assert got is not None
    assert (got.cpu_millis, got.memory_bytes) == (1001, 2 * GIB + 2)


@pytest.mark.parametrize(("product", "gpu_type"), [
    ("NVIDIA-A100-SXM4-80GB", "a100"), ("NVIDIA-A10G", "a10"), ("Tesla-T4", "t4"),
    ("NVIDIA-L4", "l4"), ("Tesla-V100-SXM2-16GB", "v100"), ("NVIDIA-H100-80GB-HBM3", "h100"),
    ("NVIDIA-H200", "h200"), ("nvidia-a100-pcie-40gb", "a100"), ("NVIDIA-L40S", "unknown"),
    (None, "unknown"),
])
def test_pod_usage_gpu_type_from_node_selector(product: str | None, gpu_type: str) -> None:
    got = pod_usage(pod(
        containers=[{"name": "t", "resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "8"}}}],
        node_selector={} if product is None else {"nvidia.com/gpu.product": product}))
    assert got is not None
    assert (got.gpu_type, got.gpu_count, got.cpu_millis) == (gpu_type, 2, 8000)


def test_pod_usage_gpu_type_label_wins_and_no_gpus_is_none() -> None:
    gpu = [{"name": "t", "resources": {"requests": {"nvidia.com/gpu": 1}}}]
    labelled = pod_usage(pod(containers=gpu, labels={"arclight.dev/gpu-type": "h100"},
                             node_selector={"nvidia.com/gpu.product": "Tesla-T4"}))
    assert labelled is not None and (labelled.gpu_type, labelled.gpu_count) == ("h100", 1)
    plain = pod_usage(pod(labels={"arclight.dev/gpu-type": "h100"}))
    assert plain is not None and (plain.gpu_type, plain.gpu_count) == ("none", 0)


def test_pod_usage_end_of_terminated_containers() -> None:
    base = {"startTime": "2024-05-01T09:10:07Z"}
    done = pod_usage(pod(status={**base, "phase": "Succeeded", "containerStatuses": [
        terminated("2024-05-01T10:02:30Z"), terminated("2024-05-01T10:01:00Z", "sidecar")]}))
    assert done is not None and done.end == utc(2024, 5, 1, 10, 2, 30)
    # Every container terminated while the phase still says Running.
    stopped = pod_usage(pod(status={**base, "phase": "Running",
                                    "containerStatuses": [terminated("2024-05-01T09:30:00Z")]}))
    assert stopped is not None and stopped.end == utc(2024, 5, 1, 9, 30)
    # One container still runs: the pod runs, even while it is being deleted.
    partly = pod_usage(pod(deletion="2024-05-01T09:40:00Z", status={
        **base, "phase": "Running",
        "containerStatuses": [terminated("2024-05-01T09:30:00Z"), running("sidecar")]}))
    assert partly is not None and partly.end is None
    # No finishedAt: the last state's, then the deletion timestamp.
    last = pod_usage(pod(status={**base, "phase": "Failed", "containerStatuses": [
        {"name": "t", "state": {"terminated": {"exitCode": 1}},
         "lastState": {"terminated": {"finishedAt": "2024-05-01T09:50:00Z"}}}]}))
    assert last is not None and last.end == utc(2024, 5, 1, 9, 50)
    deleted = pod_usage(pod(deletion="2024-05-01T09:55:00Z", status={
        **base, "phase": "Failed", "containerStatuses": [terminated(None)]}))
    assert deleted is not None and deleted.end == utc(2024, 5, 1, 9, 55)
    # An end before the start (clock skew) is clamped to the start.
    skewed = pod_usage(pod(status={**base, "phase": "Succeeded",
                                   "containerStatuses": [terminated("2024-05-01T09:00:00Z")]}))
    assert skewed is not None and skewed.end == skewed.start == utc(2024, 5, 1, 9, 10, 7)


def test_pod_usage_none_for_unmetered_or_unstarted_pods() -> None:
    assert pod_usage(pod(status={"phase": "Pending"})) is None
    unlabeled = pod()
    del unlabeled["metadata"]["labels"]["arclight.dev/owner-kind"]
    assert pod_usage(unlabeled) is None
    assert pod_usage({"metadata": {"name": "x"}}) is None
    assert pod_usage({}) is None
    bare = pod(labels={})
    del bare["metadata"]["labels"]["arclight.dev/owner-uid"]
    got = pod_usage(bare)
    assert got is not None and got.owner_uid == ""


# --- slices --------------------------------------------------------------------------------

def seconds_price(_: PodUsage, seconds: int) -> Decimal:
    return Decimal(seconds)


def test_slices_of_an_ended_pod() -> None:
    p = usage_of(cpu_millis=1000, start=utc(2024, 5, 1, 9, 10, 7), end=utc(2024, 5, 1, 10, 2, 30))
    got = slices(p, utc(2024, 5, 1, 11), None, partial(credit_seconds, DEFAULT_RATES), "team")
    assert [s.start for s in got] == [utc(2024, 5, 1, 9, 10, 7), utc(2024, 5, 1, 9, 15),
                                      utc(2024, 5, 1, 9, 30), utc(2024, 5, 1, 9, 45),
                                      utc(2024, 5, 1, 10)]
    assert [s.slot for s in got] == [utc(2024, 5, 1, 9)] + [s.start for s in got][1:]
    assert [s.seconds for s in got] == [293, 900, 900, 900, 150]
    assert sum(s.seconds for s in got) == (p.end - p.start).total_seconds() == 3143
    assert [s.final for s in got] == [False] * 4 + [True]
    assert got[-1].end == p.end and all(s.budget == "team" for s in got)
    assert [s.credit_seconds for s in got] == [4 * s.seconds for s in got]
    assert credits(sum((s.credit_seconds for s in got), Decimal(0))) == 3  # 3.49 credits


def test_slices_of_a_running_pod_respect_the_grace() -> None:
    p = usage_of(start=utc(2024, 5, 1, 9, 10, 7))
    assert GRACE_SECONDS == 120
    assert slices(p, utc(2024, 5, 1, 9, 16, 59), None, seconds_price, None) == []
    got = slices(p, utc(2024, 5, 1, 9, 17), None, seconds_price, None)
    assert [(s.start, s.end, s.seconds, s.final) for s in got] == [
        (utc(2024, 5, 1, 9, 10, 7), utc(2024, 5, 1, 9, 15), 293, False)]
    later = slices(p, utc(2024, 5, 1, 10, 5), got[-1].end, seconds_price, None)
    assert [(s.start, s.seconds) for s in later] == [
        (utc(2024, 5, 1, 9, 15), 900), (utc(2024, 5, 1, 9, 30), 900),
        (utc(2024, 5, 1, 9, 45), 900)]
    assert slices(p, utc(2024, 5, 1, 10, 5), later[-1].end, seconds_price, None) == []


def test_slices_zero_length_final() -> None:
    at = utc(2024, 5, 1, 9, 10, 7)
    got = slices(usage_of(start=at, end=at), utc(2024, 5, 1, 10), None, seconds_price, None)
    assert [(s.slot, s.start, s.end, s.seconds, s.credit_seconds, s.final) for s in got] == [
        (utc(2024, 5, 1, 9), at, at, 0, 0, True)]
    # The end reported after its slot was written: a zero-length final slice records it.
    late = usage_of(start=at, end=utc(2024, 5, 1, 10))
    got = slices(late, utc(2024, 5, 1, 10, 30), utc(2024, 5, 1, 10), seconds_price, None)
    assert [(s.start, s.seconds, s.final) for s in got] == [(utc(2024, 5, 1, 10), 0, True)]


def test_unwritten_seconds() -> None:
    p = usage_of(start=utc(2024, 5, 1, 9, 10, 7))
    assert unwritten_seconds(p, utc(2024, 5, 1, 9, 20), None) == 593
    assert unwritten_seconds(p, utc(2024, 5, 1, 9, 20), utc(2024, 5, 1, 9, 15)) == 300
    assert unwritten_seconds(p, utc(2024, 5, 1, 9), None) == 0
    ended = dataclasses.replace(p, end=utc(2024, 5, 1, 9, 30))
    assert unwritten_seconds(ended, utc(2024, 5, 2), utc(2024, 5, 1, 9, 15)) == 900
    assert unwritten_seconds(ended, utc(2024, 5, 2), utc(2024, 5, 1, 9, 45)) == 0


starts = st.integers(0, 10 * 86400).map(lambda s: utc(2024, 3, 1) + timedelta(seconds=s))


@examples(300)
@given(start=starts, duration=st.integers(0, 6 * 3600))
def test_slices_add_up_and_stay_in_their_slot(start: datetime, duration: int) -> None:
    p = usage_of(start=start, end=start + timedelta(seconds=duration))
    got = slices(p, p.end + timedelta(days=1), None, seconds_price, None)
    assert sum(s.seconds for s in got) == duration
    assert got[0].start == start and got[-1].end == p.end and got[-1].final
    assert not any(s.final for s in got[:-1])
    for s, after in itertools.pairwise(got):
        assert s.end == after.start
    for s in got:
        slot_end = s.slot + timedelta(seconds=SLICE_SECONDS)
        assert s.slot == slot_of(s.start) <= s.start <= s.end <= slot_end
        assert s.seconds == (s.end - s.start).total_seconds() and s.credit_seconds == s.seconds
    assert all(s.seconds > 0 for s in got) or duration == 0


@examples(300)
@given(start=starts, duration=st.integers(0, 4 * 3600),
       steps=st.lists(st.integers(0, 5 * 3600), max_size=12))
def test_writing_in_steps_gives_the_same_slices(start: datetime, duration: int,
                                                steps: list[int]) -> None:
    end = start + timedelta(seconds=duration)
    ended = usage_of(start=start, end=end)
    live = dataclasses.replace(ended, end=None)
    written: list[Any] = []
    until: datetime | None = None
    for offset in sorted(steps) + [5 * 3600]:
        now = start + timedelta(seconds=offset)
        seen = ended if now >= end else live  # the kubelet reports the end promptly
        new = slices(seen, now, until, seconds_price, "b")
        assert unwritten_seconds(seen, now, until) >= sum(s.seconds for s in new)
        written += new
        until = new[-1].end if new else until
        if seen is ended:
            break
    same_pod = [dataclasses.replace(s, pod=ended) for s in written]  # live slices: end None
    assert same_pod == slices(ended, start + timedelta(days=1), None, seconds_price, "b")


def test_a_deleted_pod_whose_container_never_ran_ended_when_deletion_was_asked() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u",
                        "labels": {"arclight.dev/owner-kind": "TrainingRun",
                                   "arclight.dev/owner-name": "r"},
                        "deletionTimestamp": "2026-12-01T10:00:30Z",
                        "deletionGracePeriodSeconds": 30},
           "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]},
           "status": {"phase": "Pending", "startTime": "2026-12-01T09:00:00Z",
                      "containerStatuses": [{"name": "c", "state": {
                          "waiting": {"reason": "ImagePullBackOff"}}}]}}
    found = pod_usage(pod)
    assert found is not None and found.end == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    pod["status"]["containerStatuses"][0]["state"] = {"running": {"startedAt": "x"}}
    assert pod_usage(pod).end is None  # still running: the kubelet will report its end


def test_an_end_reported_after_the_grace_rewrites_the_slot_that_holds_it() -> None:
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    ended = dataclasses.replace(usage_of(cpu_millis=1000), start=start,
                                end=start + timedelta(seconds=1000))
    # 9:00-9:45 was written while the pod looked running; it ended at 9:16:40
    (piece,) = slices(ended, start + timedelta(hours=1), start + timedelta(minutes=45),
                      partial(credit_seconds, DEFAULT_RATES), None)
    assert (piece.slot, piece.start, piece.end, piece.seconds, piece.final) == (
        start + timedelta(minutes=15), start + timedelta(minutes=15),
        start + timedelta(seconds=1000), 100, True)
