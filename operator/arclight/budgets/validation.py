"""What a CreditBudget may say; the rest is refused naming the field."""
from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from typing import Any

from arclight.api.creditbudget import CreditBudgetSpec
from arclight.core.errors import InvalidSpec, parse_spec

#: A budget's name only labels ledger rows and Events; Kubernetes' own limit applies.
MAX_NAME_LENGTH = 253


def validate_creditbudget(budget: Mapping[str, Any]) -> CreditBudgetSpec:
    """The validated spec; raise InvalidSpec naming the first bad field."""
    spec = parse_spec(budget, CreditBudgetSpec, MAX_NAME_LENGTH)
    try:
        zoneinfo.ZoneInfo(spec.period.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidSpec(f"spec.period.timeZone: unknown time zone {spec.period.time_zone!r};"
                          " use an IANA name such as Europe/Berlin or UTC") from None
    return spec
