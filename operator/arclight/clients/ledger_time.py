"""Timestamps as the ledger stores them: aware on the way in, UTC on the way out."""
from __future__ import annotations

import datetime


def aware(value: datetime.datetime, name: str) -> datetime.datetime:
    """``value``, refused when it has no time zone (``name`` says which argument)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")
    return value


def utc(value: datetime.datetime) -> datetime.datetime:
    """``value`` in UTC."""
    return value.astimezone(datetime.UTC)
