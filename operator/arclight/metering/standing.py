"""Where a budget stands in its period: used, granted, remaining, percent, exhausted.

One computation shared by the CreditBudget's status and the admission of the work it pays
for, so the numbers a held run quotes are the budget's own.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from arclight.core.costs import BudgetUsage, Metering
from arclight.metering.pricing import credits
from arclight.metering.requests import per_thousand


@dataclass(frozen=True)
class Standing:
    """A budget's figures in whole credits (rounded once from the exact usage)."""

    used: int
    granted: int

    @property
    def remaining(self) -> int:
        """Credits left this period (negative after an overrun with ``warn``)."""
        return self.granted - self.used

    @property
    def percent_used(self) -> int:
        """Whole percent used (100 for a spent zero-credit budget)."""
        if self.granted <= 0:
            return 100 if self.used > 0 or self.granted == 0 else 0
        return self.used * 100 // self.granted

    @property
    def exhausted(self) -> bool:
        """No credit is left."""
        return self.used >= self.granted

    def describe(self, name: str) -> str:
        """``CreditBudget team-a: 1200 of 1000 credits used (120%)``."""
        return (f"CreditBudget {name}: {self.used} of {self.granted} credits used "
                f"({self.percent_used}%)")


def standing(usage: BudgetUsage) -> Standing:
    """The standing of a measured period."""
    return Standing(used=credits(usage.credit_seconds), granted=usage.granted)


def by_namespace(usage: BudgetUsage) -> list[tuple[str, int]]:
    """Whole credits per namespace, largest first (ties by name)."""
    rows = [(ns, credits(cs)) for ns, cs in usage.by_namespace.items() if cs > Decimal(0)]
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def owner_cost(metering: Metering, uid: str | None) -> dict[str, int | str] | None:
    """``status.cost`` of the owner ``uid`` (None when the snapshot has no figure for it:
    the status then keeps what it had)."""
    cost = metering.owners.get(uid or "")
    if cost is None:
        return None
    shown: dict[str, int | str] = {"gpuSeconds": cost.gpu_seconds,
                                   "credits": credits(cost.credit_seconds)}
    if cost.requests is not None:
        shown["requests"] = cost.requests
        each = per_thousand(cost.credit_seconds, cost.requests)
        if each is not None:
            shown["creditsPer1000Requests"] = each
    return shown
