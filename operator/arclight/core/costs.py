"""What metering knows, as a fact a pass may read (a snapshot; pure data, no I/O).

The meter (``arclight.framework.meter``) writes usage slices to the ledger and, after each
round, publishes one :class:`Metering` snapshot: the cost of every metered owner (ledger plus
the live part not yet written), each budget's usage in its current period and what it was
granted, and which budgets select each namespace. Plans read it from ``Facts.metering``.
Figures are exact credit-seconds (credits x 3600); plans round once for the status.
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class OwnerCost:
    """What one owner (a TrainingRun, a ModelDeployment) has cost, all time."""

    credit_seconds: Decimal = Decimal(0)
    gpu_seconds: int = 0


@dataclass(frozen=True)
class BudgetUsage:
    """A budget's figures for the period that starts at ``period_start``."""

    period_start: datetime.datetime
    period_end: datetime.datetime | None
    granted: int
    by_namespace: Mapping[str, Decimal] = field(default_factory=dict)
    enforcement: str = "hold"

    @property
    def credit_seconds(self) -> Decimal:
        """Everything used this period, exact."""
        return sum(self.by_namespace.values(), Decimal(0))


@dataclass(frozen=True)
class Metering:
    """The newest metering snapshot. ``enabled`` is False when the operator has no ledger;
    ``error`` says why the last round could not reach it (the figures are then the last
    ones measured, at ``measured_at``)."""

    enabled: bool = False
    error: str | None = None
    measured_at: datetime.datetime | None = None
    owners: Mapping[str, OwnerCost] = field(default_factory=dict)
    budgets: Mapping[str, BudgetUsage] = field(default_factory=dict)
    namespace_budgets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def budget_of(self, namespace: str) -> tuple[str, ...]:
        """The budgets whose namespaceSelector selects ``namespace`` (sorted)."""
        return self.namespace_budgets.get(namespace, ())
