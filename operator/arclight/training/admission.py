"""May this run's trainer run now? One pure decision per pass, in one place.

Inputs: the spec (``suspend``, ``queueName``), the attempt's Job as observed (Kueue admits a
queued Job by un-suspending it) and whether the cluster can suspend Jobs (Kubernetes 1.21+;
older servers drop ``spec.suspend``, so there a paused run's Job is deleted and recreated on
resume), and the CreditBudget that pays for it (``Facts.metering``: a budget whose credits
are spent with enforcement ``hold`` keeps a new attempt waiting; one that is not measured yet,
or unreachable, holds nothing).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arclight.api.trainingrun import Reason as R
from arclight.api.trainingrun import TrainingRunSpec
from arclight.core.conditions import FALSE, TRUE
from arclight.core.costs import Metering
from arclight.core.facts import Capabilities
from arclight.metering.selection import charged_budget
from arclight.metering.standing import standing

Condition = tuple[str, str, str]
ADMITTED = (TRUE, R.RESOLVED, "The run was admitted.")
PAUSED = (FALSE, R.SUSPENDED,
          "spec.suspend is true; the trainer is paused. Set it to false to resume.")


@dataclass(frozen=True)
class Admission:
    """The verdict: whether the attempt's Job should exist, whether it is held suspended,
    the ``Admitted`` condition, the ``Running`` condition when held, and the phase flag."""

    job_wanted: bool
    hold: bool
    admitted: Condition
    running: Condition | None = None
    suspended: bool = False


def admit(spec: TrainingRunSpec, job: Mapping[str, Any] | None, caps: Capabilities
          ) -> Admission:
    """Decide for the attempt whose Job is ``job`` (None: not created yet)."""
    if spec.suspend:
        return Admission(job_wanted=caps.job_suspend and job is not None, hold=True,
                         admitted=ADMITTED, running=PAUSED, suspended=True)
    job_held = job is None or bool((job.get("spec") or {}).get("suspend"))
    if spec.queue_name and caps.job_suspend and job_held:
        return Admission(job_wanted=True, hold=True,
                         admitted=(FALSE, R.QUEUED, (f"Waiting for Kueue LocalQueue "
                                                    f"{spec.queue_name} to admit the trainer.")),
                         running=(FALSE, R.QUEUED, "Not admitted yet."))
    return Admission(job_wanted=True, hold=False, admitted=ADMITTED)


@dataclass(frozen=True)
class BudgetVerdict:
    """The budget's say on a new attempt: ``held`` with the ``BudgetExceeded`` condition
    (status, reason, message); None when no budget applies."""

    held: bool
    exceeded: Condition


def budget_verdict(spec: TrainingRunSpec, namespace: str, metering: Metering
                   ) -> BudgetVerdict | None:
    """Whether the budget paying for a run in ``namespace`` lets a new attempt start."""
    if not metering.enabled:
        return None
    selecting = metering.budget_of(namespace)
    name = charged_budget(spec.budget_ref, selecting)
    if name is None and len(selecting) > 1:
        return BudgetVerdict(True, (TRUE, R.BUDGET_CONFLICT, (
            f"Namespace {namespace} is selected by CreditBudgets {', '.join(selecting)}: set "
            "spec.budgetRef to one of them, or narrow their namespaceSelectors.")))
    usage = metering.budgets.get(name) if name else None
    if usage is None:
        return None
    figures = standing(usage)
    described = figures.describe(name or "")
    if figures.exhausted and usage.enforcement == "hold":
        end = usage.period_end.strftime("%Y-%m-%dT%H:%M:%SZ") if usage.period_end else None
        when = f"the next period starts {end}" if end else "the period never resets"
        return BudgetVerdict(True, (TRUE, R.BUDGET_EXHAUSTED, (
            f"{described}; the run waits and starts by itself when credits return ({when}; "
            "or raise its spec.credits).")))
    return BudgetVerdict(False, (FALSE, R.BUDGET_AVAILABLE, f"{described}."))
