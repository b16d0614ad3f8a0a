"""What a CreditBudget may say today; the rest is refused naming the field."""
from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from typing import Any

from arclight.api.creditbudget import CreditBudgetSpec
from arclight.core.errors import InvalidSpec, parse_spec

#: A budget's name only labels ledger rows and Events; Kubernetes' own limit applies.
MAX_NAME_LENGTH = 253


def validate_creditbudget(budget: Mapping[str, Any]) -> CreditBudgetSpec:
    """The validated spec; raise InvalidSpec naming the first bad or not-yet-honoured field."""
    spec = parse_spec(budget, CreditBudgetSpec, MAX_NAME_LENGTH)
    try:
        zoneinfo.ZoneInfo(spec.period.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidSpec(f"spec.period.timeZone: unknown time zone {spec.period.time_zone!r};"
                          " use an IANA name such as Europe/Berlin or UTC") from None
    if spec.enforcement == "stop":
        raise InvalidSpec("spec.enforcement: `stop` (suspending running work at 100%) is not "
                          "delivered yet; use `hold` (new work waits) or `warn`")
    if spec.notify:
        raise InvalidSpec("spec.notify: budget webhooks are not delivered yet; remove notify "
                          "(alerts are the Warning condition and BudgetWarning Events)")
    if spec.rates.storage_gib_month is not None:
        raise InvalidSpec("spec.rates.storageGiBMonth: artifact storage is not metered yet; "
                          "remove the field (pods are metered by CPU, memory and GPU)")
    return spec
