"""Constraint checkers: a meeting start time against busy calendars, a plan against dependencies."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

TIME_RE = re.compile(r"\b(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", re.IGNORECASE)


@dataclass
class Check:
    """A constraint check: satisfied/total constraints and a sentence per violation."""

    satisfied: int
    total: int
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.satisfied == self.total

    @property
    def fraction(self) -> float:
        return self.satisfied / self.total if self.total else 0.0

    def describe(self) -> str:
        return "ok: all constraints satisfied" if self.ok else "; ".join(self.violations)


def parse_time(text: str) -> int | None:
    """Minutes after midnight of the first clock time in `text` ("14:30", "2pm", "9:00 am")."""
    for match in TIME_RE.finditer(text):
        hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
        if match.group(2) is None and half is None:
            continue  # a bare number is not a time
        if half:
            if not 1 <= hour <= 12:
                continue
            hour = hour % 12 + (12 if half.lower().startswith("p") else 0)
        if hour < 24 and minute < 60:
            return hour * 60 + minute
    return None


def clock(minutes: int) -> str:
    """540 -> '09:00'."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def interval(text: str) -> tuple[int, int]:
    """'09:00-10:30' -> (540, 630); ValueError when malformed."""
    start, sep, end = text.partition("-")
    first, second = parse_time(start), parse_time(end)
    if not sep or first is None or second is None or second <= first:
        raise ValueError(f"{text!r} is not an interval like 09:00-10:30")
    return first, second


def check_meeting(start: int, duration: int, busy: dict[str, list[str]], day_start: str,
                  day_end: str) -> Check:
    """Check a meeting [start, start+duration) against working hours and everyone's busy times."""
    end = start + duration
    violations = []
    opens, closes = parse_time(day_start), parse_time(day_end)
    in_hours = opens is not None and closes is not None and opens <= start and end <= closes
    if not in_hours:
        violations.append(f"{clock(start)}-{clock(end)} is outside {day_start}-{day_end}")
    for person, slots in busy.items():
        for slot in slots:
            first, last = interval(slot)
            if start < last and first < end:
                violations.append(f"{person} is busy {slot}")
                break
    total = 1 + len(busy)
    return Check(satisfied=total - len(violations), total=total, violations=violations)


def split_plan(text: str) -> list[str]:
    """Steps of a plan written as '1. a, 2. b', 'a -> b -> c', 'a; b' or one per line."""
    parts = re.split(r"\s*(?:->|=>|→|,|;|\n|\bthen\b|\s(?=\d+[.)]\s))\s*", text)
    steps = [re.sub(r"^(?:step\s*)?\d+\s*[.):]\s*|^[-*•]\s*", "", p.strip(), flags=re.IGNORECASE)
             for p in parts]
    return [s.strip(" .") for s in steps if s.strip(" .")]


def check_plan(steps: list[str], tasks: list[str], dependencies: list[str]) -> Check:
    """Check an ordering: every task exactly once, nothing extra, each 'A>B' dependency kept."""
    def key(text: str) -> str:
        return " ".join(re.findall(r"[a-z0-9]+", text.lower()))

    known = {key(t): t for t in tasks}
    order = [known.get(key(s)) for s in steps]
    violations = []
    missing = [t for t in tasks if t not in order]
    repeated = sorted({t for t in order if t and order.count(t) > 1})
    extra = [s for s, o in zip(steps, order) if o is None]
    if missing or repeated or extra:
        violations.append("; ".join(filter(None, (
            f"missing: {', '.join(missing)}" if missing else "",
            f"repeated: {', '.join(repeated)}" if repeated else "",
            f"unknown: {', '.join(extra)}" if extra else ""))))
    for dep in dependencies:
        before, _, after = dep.partition(">")
        first, second = known.get(key(before)), known.get(key(after))
        if first not in order or second not in order or order.index(first) > order.index(second):
            violations.append(f"{first} must come before {second}")
    total = 1 + len(dependencies)
    return Check(satisfied=total - len(violations), total=total, violations=violations)
