"""Budget periods: the UTC window of a CreditBudget period that contains an instant (pure).

A period starts at a local midnight in ``spec.period.timeZone``. A local midnight that does
not exist (a DST gap) is the first instant of that local day; an ambiguous one (a DST fold)
is its first occurrence. Every boundary is a :data:`~arclight.metering.model.SLICE_SECONDS`
slot boundary in UTC, so a usage slice never straddles two periods.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from arclight.api.creditbudget import Period
from arclight.metering.model import SLICE_SECONDS

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SLOT = timedelta(seconds=SLICE_SECONDS)
_MICROSECOND = timedelta(microseconds=1)


def _aware(t: datetime, what: str) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what}: needs a time zone (got naive {t.isoformat()})")
    return t.astimezone(UTC)


def slot_of(t: datetime) -> datetime:
    """The start of the 900 s UTC slot that contains the aware datetime ``t`` (in UTC)."""
    t = _aware(t, "slot_of")
    return _EPOCH + ((t - _EPOCH) // _SLOT) * _SLOT


@dataclass(frozen=True)
class Window:
    """A budget period ``[start, end)`` in UTC; ``end`` is None for period type ``none``."""

    start: datetime
    end: datetime | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "start", _aware(self.start, "Window.start"))
        if self.end is not None:
            object.__setattr__(self, "end", _aware(self.end, "Window.end"))
            if self.end <= self.start:
                raise ValueError(f"Window: end {self.end} is not after start {self.start}")

    def contains(self, t: datetime) -> bool:
        """Whether the aware instant ``t`` lies in ``[start, end)``."""
        t = _aware(t, "Window.contains")
        return self.start <= t and (self.end is None or t < self.end)

    @property
    def seconds(self) -> int | None:
        """The window's length in seconds (None when it is open-ended)."""
        if self.end is None:
            return None
        return (self.end - self.start) // timedelta(seconds=1)

    def elapsed_fraction(self, now: datetime) -> Fraction | None:
        """How much of the window lies before ``now``: exact, 0 to 1 (None when open-ended)."""
        if self.end is None:
            return None
        now = _aware(now, "Window.elapsed_fraction")
        total = (self.end - self.start) // _MICROSECOND
        elapsed = (now - self.start) // _MICROSECOND
        return Fraction(min(max(elapsed, 0), total), total)


def zone_of(period: Period) -> ZoneInfo:
    """The IANA time zone of ``period``; ValueError naming ``spec.period.timeZone`` if unknown."""
    try:
        return ZoneInfo(period.time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(
            f"spec.period.timeZone: unknown IANA time zone {period.time_zone!r}"
            " (use a name such as Europe/Berlin or UTC)"
        ) from exc


def _day_start(day: date, zone: ZoneInfo) -> datetime:
    """The first instant (UTC) whose local date in ``zone`` is ``day`` or later."""
    naive = datetime.combine(day, time())
    first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    lo, hi = min(first, second), max(first, second)
    if lo.astimezone(zone).date() >= day:
        return lo  # midnight exists (its first occurrence when it is ambiguous)
    # Midnight falls in a DST gap: the day starts at the transition, between lo and hi.
    lo_s, hi_s = (lo - _EPOCH) // timedelta(seconds=1), (hi - _EPOCH) // timedelta(seconds=1)
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if (_EPOCH + timedelta(seconds=mid)).astimezone(zone).date() >= day:
            hi_s = mid
        else:
            lo_s = mid
    return _EPOCH + timedelta(seconds=hi_s)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1)


def _stepper(period: Period) -> tuple[Callable[[date], date], Callable[[date, int], date]]:
    """(first local day of the period holding a local day, shift a first day by n periods)."""
    if period.type == "monthly":
        def first_monthly(day: date) -> date:
            first = day.replace(day=period.reset_day)
            return first if day >= first else _add_months(first, -1)
        return first_monthly, _add_months
    if period.type == "weekly":
        def first_weekly(day: date) -> date:
            return day - timedelta(days=(day.isoweekday() - period.reset_day) % 7)
        return first_weekly, lambda day, n: day + timedelta(days=7 * n)
    return (lambda day: day), (lambda day, n: day + timedelta(days=n))


def window(period: Period, at: datetime, origin: datetime) -> Window:
    """The budget period that contains ``at``; for type ``none``, ``[slot_of(origin), ∞)``.

    ``origin`` is when metering for the budget began (e.g. its creation time).
    """
    at = _aware(at, "window")
    if period.type == "none":
        return Window(slot_of(origin), None)
    zone = zone_of(period)
    first_of, shift = _stepper(period)
    first = first_of(at.astimezone(zone).date())
    start, end = _day_start(first, zone), _day_start(shift(first, 1), zone)
    # A fold across midnight can put `at` outside the period of its local date: step.
    while at < start:
        first = shift(first, -1)
        start, end = _day_start(first, zone), start
    while at >= end:
        first = shift(first, 1)
        start, end = end, _day_start(shift(first, 1), zone)
    assert start == slot_of(start) and end == slot_of(end), (period.time_zone, start, end)
    return Window(start, end)


def previous(period: Period, win: Window, origin: datetime) -> Window | None:
    """The period before ``win``; None for type ``none`` or before the period of ``origin``."""
    if period.type == "none":
        return None
    before = window(period, win.start - timedelta(seconds=1), origin)
    if before.start < window(period, slot_of(origin), origin).start:
        return None
    return before
