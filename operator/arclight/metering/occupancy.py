"""Concurrency limits of a budget: which TrainingRuns may run at once.

Every run a budget with limits pays for is ranked the same way by every pass and every
replica: runs already admitted first, then by creation time (namespace and name break ties).
Walking that order, a run takes a slot if it fits under ``maxRuns`` and ``maxGPUs``; an
admitted run always keeps its slot (a lowered limit holds new work, it never stops old work).
A new run is admitted only when it takes a slot in the walk, so two runs created together
never both take the last one, and one too large for a slot does not block smaller ones
behind it.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from arclight.core.conditions import is_true
from arclight.core.costs import Limits, Metering, RunClaim
from arclight.metering.selection import charged_budget

FINISHED = ("Succeeded", "Failed")


def rank(claim: RunClaim) -> tuple[bool, str, str, str]:
    """The order in which runs take slots."""
    return (not claim.running, claim.created, claim.namespace, claim.name)


def run_gpus(spec: Mapping[str, Any]) -> int:
    """GPUs a TrainingRun's trainer requests: per node (1 when only a type is set) x nodes."""
    resources = spec.get("resources") or {}
    gpu = resources.get("gpu") or {}
    count = gpu.get("count")
    per_node = int(count) if count is not None else (0 if gpu.get("type", "none") == "none"
                                                     else 1)
    return per_node * int(resources.get("nodes") or 1)


def claim_of(run: Mapping[str, Any]) -> RunClaim | None:
    """The claim of a TrainingRun object; None when it wants no slot (finished, suspended)."""
    meta, spec = run.get("metadata") or {}, run.get("spec") or {}
    status = run.get("status") or {}
    conditions = status.get("conditions") or []
    if spec.get("suspend") or any(is_true(conditions, c) for c in FINISHED):
        return None
    return RunClaim(uid=str(meta.get("uid") or ""), namespace=str(meta.get("namespace")),
                    name=str(meta.get("name")), created=str(meta.get("creationTimestamp") or ""),
                    gpus=run_gpus(spec), running=is_true(conditions, "Admitted"))


def claims_by_budget(runs: Iterable[Mapping[str, Any]], metering: Metering
                     ) -> dict[str, tuple[RunClaim, ...]]:
    """The claims each budget with limits pays for, in rank order (empty: no such budget)."""
    limited = {name for name, usage in metering.budgets.items() if usage.limits.any}
    if not limited:
        return {}
    found: dict[str, list[RunClaim]] = {name: [] for name in limited}
    for run in runs:
        namespace = str((run.get("metadata") or {}).get("namespace"))
        ref = (run.get("spec") or {}).get("budgetRef")
        budget = charged_budget(str(ref) if ref else None, metering.budget_of(namespace))
        if budget in found:
            claim = claim_of(run)
            if claim is not None:
                found[budget].append(claim)
    return {name: tuple(sorted(claims, key=rank)) for name, claims in found.items()}


@dataclass(frozen=True)
class InUse:
    """What a budget's admitted runs hold now."""

    runs: int
    gpus: int


def in_use(claims: Iterable[RunClaim]) -> InUse:
    """Runs admitted and the GPUs they request."""
    running = [c for c in claims if c.running]
    return InUse(runs=len(running), gpus=sum(c.gpus for c in running))


@dataclass(frozen=True)
class Slot:
    """The limits' say on a run: ``admitted``, else ``message`` says why and what to do."""

    admitted: bool
    message: str


def slot(claims: Iterable[RunClaim], me: RunClaim, limits: Limits, budget: str) -> Slot:
    """Whether ``me`` takes a slot in ``budget``'s walk (``me`` replaces its own old claim)."""
    if limits.max_gpus is not None and me.gpus > limits.max_gpus:
        return Slot(False, (
            f"The run requests {me.gpus} GPUs, more than CreditBudget {budget} allows at once "
            f"(spec.limits.maxGPUs {limits.max_gpus}): lower spec.resources.gpu.count or "
            "spec.resources.nodes, or raise the limit."))
    ordered = sorted([c for c in claims if c.uid != me.uid] + [me], key=rank)
    runs = gpus = waiting = 0
    for claim in ordered:
        fits = claim.running or (
            (limits.max_runs is None or runs + 1 <= limits.max_runs)
            and (limits.max_gpus is None or gpus + claim.gpus <= limits.max_gpus))
        if claim.uid == me.uid:
            return Slot(True, "") if fits else Slot(False, _waiting(
                budget, limits, runs, gpus, me.gpus, waiting + 1))
        if fits:
            runs, gpus = runs + 1, gpus + claim.gpus
        else:
            waiting += 1
    raise AssertionError("the run's own claim is in the walk")


def _waiting(budget: str, limits: Limits, runs: int, gpus: int, wanted: int,
             place: int) -> str:
    held = []
    if limits.max_runs is not None and runs + 1 > limits.max_runs:
        held.append(f"{runs} of spec.limits.maxRuns {limits.max_runs} runs")
    if limits.max_gpus is not None and gpus + wanted > limits.max_gpus:
        held.append(f"{gpus} of spec.limits.maxGPUs {limits.max_gpus} GPUs (this run "
                    f"requests {wanted})")
    return (f"CreditBudget {budget} has {' and '.join(held)} in use; the run is number "
            f"{place} in line and starts by itself when work ahead of it finishes (or raise "
            "the limit).")
