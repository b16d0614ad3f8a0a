"""What a budget's enforcement says about the work it pays for: one verdict for every kind.

``warn`` never holds anything. ``hold`` keeps new work waiting once the credits are spent (a
TrainingRun's next attempt, a ModelDeployment's scale-up). ``stop`` also suspends a running
TrainingRun (its trainer checkpoints on SIGTERM; the run resumes when credits return). A
budget not measured yet, or one the ledger cannot be read for, holds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass

from arclight.core.conditions import FALSE, TRUE
from arclight.core.costs import Metering
from arclight.metering.selection import charged_budget
from arclight.metering.standing import standing

Condition = tuple[str, str, str]
#: Reasons of the ``BudgetExceeded`` condition (the same for every kind).
EXHAUSTED, AVAILABLE, CONFLICT = "BudgetExhausted", "BudgetAvailable", "BudgetConflict"


@dataclass(frozen=True)
class BudgetVerdict:
    """The budget's say: ``held`` (no new work), ``stop`` (running work suspends too), the
    ``BudgetExceeded`` condition (status, reason, message) and the budget's name."""

    held: bool
    exceeded: Condition
    budget: str | None = None
    stop: bool = False


def budget_verdict(budget_ref: str | None, namespace: str, metering: Metering,
                   waiting: str = "the run waits and starts by itself",
                   can_name: bool = True) -> BudgetVerdict | None:
    """The verdict of the budget paying for work in ``namespace`` (``budget_ref`` names one;
    ``can_name``: the kind has ``spec.budgetRef``); ``waiting`` says what happens to held
    work. None when no budget applies."""
    if not metering.enabled:
        return None
    selecting = metering.budget_of(namespace)
    name = charged_budget(budget_ref, selecting)
    if name is None and len(selecting) > 1:
        return BudgetVerdict(True, (TRUE, CONFLICT, (
            f"Namespace {namespace} is selected by CreditBudgets {', '.join(selecting)}: "
            + ("set spec.budgetRef to one of them, or " if can_name else "")
            + "narrow their namespaceSelectors.")))
    usage = metering.budgets.get(name) if name else None
    if name is None or usage is None:
        return None
    figures = standing(usage)
    described = figures.describe(name)
    if figures.exhausted and usage.enforcement in ("hold", "stop"):
        end = usage.period_end.strftime("%Y-%m-%dT%H:%M:%SZ") if usage.period_end else None
        when = f"the next period starts {end}" if end else "the period never resets"
        return BudgetVerdict(True, (TRUE, EXHAUSTED, (
            f"{described}; {waiting} when credits return ({when}; or raise the budget's "
            "spec.credits, or add spec.adjustments).")), name, usage.enforcement == "stop")
    return BudgetVerdict(False, (FALSE, AVAILABLE, f"{described}."), name)
