"""May this run's trainer run now? One pure decision per pass, in one place.

Inputs: the spec (``suspend``, ``queueName``), the attempt's Job as observed (Kueue admits a
queued Job by un-suspending it) and whether the cluster can suspend Jobs (Kubernetes 1.21+;
older servers drop ``spec.suspend``, so there a paused run's Job is deleted and recreated on
resume), and the CreditBudget that pays for it (``Facts.metering``: a budget whose credits
are spent with enforcement ``hold`` keeps a new attempt waiting, ``stop`` also suspends a
running one (``arclight.metering.enforcement``); its concurrency limits keep a new run waiting for a slot, see
``arclight.metering.occupancy``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from arclight.api.trainingrun import Reason as R
from arclight.api.trainingrun import TrainingRunSpec
from arclight.core.conditions import FALSE, TRUE
from arclight.core.costs import Metering, RunClaim
from arclight.core.facts import Capabilities
from arclight.metering import enforcement, occupancy
from arclight.metering.enforcement import BudgetVerdict
from arclight.metering.selection import charged_budget

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


def admit(spec: TrainingRunSpec, job: Mapping[str, Any] | None, caps: Capabilities,
          budget: BudgetVerdict | None = None) -> Admission:
    """Decide for the attempt whose Job is ``job`` (None: not created yet); ``budget`` is the
    budget's verdict on a running attempt (enforcement ``stop`` suspends it)."""
    if spec.suspend:
        return Admission(job_wanted=caps.job_suspend and job is not None, hold=True,
                         admitted=ADMITTED, running=PAUSED, suspended=True)
    if budget is not None and budget.stop:
        _, reason, message = budget.exceeded
        stopped = ("Suspended by its CreditBudget (enforcement stop) after a checkpoint; it "
                   "resumes from it when credits return.")
        return Admission(job_wanted=caps.job_suspend and job is not None, hold=True,
                         admitted=(FALSE, reason, message), suspended=True,
                         running=(FALSE, reason, stopped))
    job_held = job is None or bool((job.get("spec") or {}).get("suspend"))
    if spec.queue_name and caps.job_suspend and job_held:
        return Admission(job_wanted=True, hold=True,
                         admitted=(FALSE, R.QUEUED, (f"Waiting for Kueue LocalQueue "
                                                    f"{spec.queue_name} to admit the trainer.")),
                         running=(FALSE, R.QUEUED, "Not admitted yet."))
    return Admission(job_wanted=True, hold=False, admitted=ADMITTED)


def budget_verdict(spec: TrainingRunSpec, namespace: str, metering: Metering
                   ) -> BudgetVerdict | None:
    """Whether the budget paying for a run in ``namespace`` lets a new attempt start (and,
    with enforcement ``stop``, a running one go on)."""
    return enforcement.budget_verdict(spec.budget_ref, namespace, metering)


def limit_verdict(spec: TrainingRunSpec, run: Mapping[str, Any], metering: Metering,
                  claims: Mapping[str, tuple[RunClaim, ...]]) -> Condition | None:
    """The ``Admitted`` condition of a run its budget's concurrency limits keep waiting;
    None when it may start (or no limit applies)."""
    namespace = str(run["metadata"]["namespace"])
    name = charged_budget(spec.budget_ref, metering.budget_of(namespace))
    usage = metering.budgets.get(name) if name else None
    me = occupancy.claim_of(run)
    if name is None or usage is None or not usage.limits.any or me is None:
        return None
    verdict = occupancy.slot(claims.get(name, ()), me, usage.limits, name)
    return None if verdict.admitted else (FALSE, R.CONCURRENCY_LIMIT, verdict.message)
