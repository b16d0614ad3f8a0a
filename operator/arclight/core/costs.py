"""What metering knows, as a fact a pass may read (a snapshot; pure data, no I/O).

The meter (``arclight.framework.meter``) writes usage slices to the ledger and, after each
round, publishes one :class:`Metering` snapshot: the cost of every metered owner (ledger plus
the live part not yet written), each budget's usage in its current period and what it was
granted, and which budgets select each namespace. Plans read it from ``Facts.metering``.
Figures are exact credit-seconds (credits x 3600); plans round once for the status.
"""
from __future__ import annotations

import datetime
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow

#: Digits of the exact decimal arithmetic (far more than any price needs); the context traps
#: :class:`~decimal.Inexact`, so a figure that would need rounding raises instead of drifting.
PRECISION = 80
EXACT = Context(prec=PRECISION, traps=[Inexact, InvalidOperation, DivisionByZero, Overflow])


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """The sum of ``values``, exactly."""
    return functools.reduce(EXACT.add, values, Decimal(0))


@dataclass(frozen=True)
class OwnerCost:
    """What one owner (a TrainingRun, a ModelDeployment) has cost, all time."""

    credit_seconds: Decimal = Decimal(0)
    gpu_seconds: int = 0
    #: Requests its serving replicas answered (None: not a server, or none counted yet).
    requests: int | None = None


@dataclass(frozen=True)
class Limits:
    """A budget's concurrency limits (None: no limit)."""

    max_runs: int | None = None
    max_gpus: int | None = None

    @property
    def any(self) -> bool:
        """Whether a limit is set."""
        return self.max_runs is not None or self.max_gpus is not None


@dataclass(frozen=True)
class RunClaim:
    """A TrainingRun that wants to run (not finished, not suspended), as admission ranks it:
    ``running`` ones (already admitted) first, then by creation."""

    uid: str
    namespace: str
    name: str
    created: str
    gpus: int
    running: bool


@dataclass(frozen=True)
class Notifications:
    """A budget's webhooks of this period not delivered: ``pending`` (being retried) and
    ``given_up`` (what failed, for good)."""

    pending: int = 0
    given_up: tuple[str, ...] = ()


@dataclass(frozen=True)
class BudgetUsage:
    """A budget's figures for the period that starts at ``period_start``."""

    period_start: datetime.datetime
    period_end: datetime.datetime | None
    granted: int
    by_namespace: Mapping[str, Decimal] = field(default_factory=dict)
    enforcement: str = "hold"
    limits: Limits = field(default_factory=Limits)
    notifications: Notifications = field(default_factory=Notifications)

    @property
    def credit_seconds(self) -> Decimal:
        """Everything used this period, exact."""
        return exact_sum(self.by_namespace.values())


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
