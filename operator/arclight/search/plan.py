"""Sweep: the pure plan of one pass (its trials as observed -> new trials, stops, status).

A pass reads every trial back from its TrainingRun (``trials.records``), asks Optuna's pruner
which running trials to stop (``sampler.pruned``), weighs the credits spent against
``maxCredits``, fills free slots up to ``parallelism`` with trials Optuna suggests
(``sampler.suggest``), and summarises: the trials table, the best trial, the counts and the
conditions. A finished sweep promotes its best trial with the same ModelDeployment builder
TrainingRun's ``deploy`` uses.
"""
from __future__ import annotations

import collections
import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from arclight.api import sweep as api
from arclight.api.common import API_VERSION
from arclight.api.sweep import SweepSpec, Trial
from arclight.core.conditions import FALSE, TRUE, StatusBuilder
from arclight.core.deploy import serve_run
from arclight.core.errors import DependencyNotReady, InvalidSpec
from arclight.core.facts import Facts
from arclight.core.names import Owner
from arclight.core.plan import Child, ObjectRef, Observed, Plan
from arclight.search import params, sampler
from arclight.search.trials import (
    PRUNED_ANNOTATION,
    STOPPED_ANNOTATION,
    TrialRecord,
    build_trial,
    records,
)

C, R = api.ConditionType, api.Reason
WARNING_TYPES = (C.FAILED,)
QUIET = ((C.BUDGET_EXHAUSTED, FALSE, None), (C.SUCCEEDED, FALSE, None), (C.FAILED, FALSE, None),
         (C.RUNNING, FALSE, R.INVALID_SPEC))


def warm_refs(obj: Mapping[str, Any], spec: SweepSpec) -> list[ObjectRef]:
    return [ObjectRef(API_VERSION, api.KIND, name, obj["metadata"]["namespace"])
            for name in spec.warm_start_from]


def promote_ref(obj: Mapping[str, Any], spec: SweepSpec) -> ObjectRef | None:
    if spec.promote is None:
        return None
    return ObjectRef(API_VERSION, "ModelDeployment", spec.promote.model_deployment,
                     obj["metadata"]["namespace"])


def references(obj: Mapping[str, Any], spec: SweepSpec) -> list[ObjectRef]:
    """What a pass reads besides its trials: the sweeps it starts from, its promotion."""
    promote = promote_ref(obj, spec)
    return warm_refs(obj, spec) + ([promote] if promote else [])


def total_trials(spec: SweepSpec) -> int:
    """Trials the sweep runs: maxTrials (a grid: at most its points)."""
    if spec.algorithm == "grid":
        return min(spec.max_trials, params.grid_size(spec.parameters))
    return spec.max_trials


def warm_trials(spec: SweepSpec, observed: Observed, obj: Mapping[str, Any]
                ) -> list[TrialRecord]:
    """The finished trials of ``warmStartFrom`` (from those sweeps' status)."""
    found: list[TrialRecord] = []
    for ref in warm_refs(obj, spec):
        other = observed.ref(ref)
        if other is None:
            raise DependencyNotReady(
                f"spec.warmStartFrom: Sweep {ref.name} does not exist; the search starts "
                "once it does (or remove it from warmStartFrom).", reason=R.WARM_START_NOT_FOUND)
        for trial in (other.get("status") or {}).get("trials") or []:
            state = trial.get("state")
            if state in ("Succeeded", "Failed", "Pruned"):
                objective = trial.get("objective")
                series = ((int(trial.get("step") or 0), float(objective)),) \
                    if objective is not None else ()
                found.append(TrialRecord(name=trial["name"], number=len(found),
                                         values=trial.get("parameters") or {}, state=state,
                                         series=series))
    return found


def best_of(spec: SweepSpec, trials: Sequence[TrialRecord]) -> TrialRecord | None:
    """The succeeded trial with the best objective; ties go to the lower number."""
    done = [t for t in trials if t.state == "Succeeded" and t.objective is not None]
    if not done:
        return None
    sign = 1.0 if spec.objective.direction == "maximize" else -1.0
    return max(done, key=lambda t: (sign * (t.objective or 0.0), -t.number))


def expected_cost(trials: Sequence[TrialRecord]) -> int:
    """What the next trial is expected to cost: the mean of the finished trials, or (before
    any finished) the most a running trial has cost so far."""
    finished = [t.credits for t in trials if t.finished]
    if finished:
        return math.ceil(sum(finished) / len(finished))
    return max((t.credits for t in trials), default=0)


class _Pass:
    """The decisions of one pass; pure (it only builds the Plan)."""

    def __init__(self, spec: SweepSpec, observed: Observed, facts: Facts) -> None:
        self.spec, self.observed, self.facts = spec, observed, facts
        meta = observed.obj["metadata"]
        self.owner = Owner.of(observed.obj)
        self.st = StatusBuilder(observed.status, meta.get("generation"), facts.now_iso)
        self.children: list[Child] = []
        self.applies: list[Child] = []
        self.exhausted = False  # a grid with no point left

    def run(self) -> Plan:
        spec = self.spec
        if spec.max_credits is not None and not self.facts.metering.enabled:
            raise DependencyNotReady(
                "spec.maxCredits: the operator has no ledger, so the trials' credits are not "
                "counted; configure the ledger (chart value ledger) or remove maxCredits.",
                reason="MeteringDisabled", retry_after=60.0)
        warm = warm_trials(spec, self.observed, self.observed.obj)
        trials = records(self.observed.of_kind("TrainingRun"), spec)
        trials = self.prune(trials)
        spent = sum(t.credits for t in trials)
        over_budget = self.over_budget(trials, spent)
        if over_budget and spec.budget_policy == "stop":
            trials = self.stop(trials, spent)
        if not over_budget:
            trials = self.start(trials, warm)
        return self.finish(trials, spent, over_budget)

    # --- decisions -------------------------------------------------------------------------

    def prune(self, trials: list[TrialRecord]) -> list[TrialRecord]:
        """Stop the running trials Optuna's pruner rejects (suspended: checkpoint kept)."""
        verdicts = sampler.pruned(self.spec, trials)
        for name, reason in verdicts.items():
            self.halt(name, PRUNED_ANNOTATION, reason)
            self.st.event("TrialPruned", f"{name}: {reason}.")
        return [dataclasses.replace(t, state="Pruned", reason=verdicts[t.name]) if t.name in verdicts
                else t for t in trials]

    def over_budget(self, trials: Sequence[TrialRecord], spent: int) -> bool:
        """Whether maxCredits leaves no room for another trial."""
        if self.spec.max_credits is None:
            return False
        return spent + expected_cost(trials) > self.spec.max_credits or \
            spent >= self.spec.max_credits

    def stop(self, trials: list[TrialRecord], spent: int) -> list[TrialRecord]:
        """budgetPolicy stop: suspend the unfinished trials (their checkpoints are kept)."""
        reason = f"maxCredits {self.spec.max_credits} reached ({spent} spent)"
        result = []
        for trial in trials:
            if not trial.finished:
                self.halt(trial.name, STOPPED_ANNOTATION, reason)
                trial = dataclasses.replace(trial, state="Stopped", reason=reason)
            result.append(trial)
        return result

    def halt(self, name: str, annotation: str, reason: str) -> None:
        self.children.append(Child(
            {"apiVersion": API_VERSION, "kind": "TrainingRun", "metadata": {"name": name}},
            create_only=True,
            patch={"metadata": {"annotations": {annotation: reason}},
                   "spec": {"suspend": True}}))

    def start(self, trials: list[TrialRecord], warm: Sequence[TrialRecord]
              ) -> list[TrialRecord]:
        """Fill the free slots with trials Optuna suggests, up to the total."""
        spec = self.spec
        active = sum(1 for t in trials if not t.finished)
        created = max((t.number + 1 for t in trials), default=0)
        seed = sampler.base_seed(spec, self.owner.uid)
        while active < spec.parallelism and created < total_trials(spec):
            values = sampler.suggest(spec, seed, trials, warm)
            if values is None:
                self.exhausted = True
                break
            try:
                trial_spec = params.trial_spec(spec.training_run_template, spec.parameters,
                                               values)
            except ValueError as exc:
                raise InvalidSpec(f"spec.{exc}") from None
            manifest = build_trial(self.owner, created, trial_spec, values)
            self.children.append(Child(manifest, create_only=True))
            trial = TrialRecord(name=manifest["metadata"]["name"], number=created,
                                values=values, state="Pending")
            self.st.event("TrialCreated", f"{trial.name}: " + ", ".join(
                f"{k}={v}" for k, v in sorted(values.items())))
            trials = [*trials, trial]
            active, created = active + 1, created + 1
        return trials

    # --- the end of a pass -------------------------------------------------------------------

    def finish(self, trials: list[TrialRecord], spent: int, over_budget: bool) -> Plan:
        spec, status = self.spec, self.st.status
        total = total_trials(spec)
        counts = collections.Counter(t.state for t in trials)
        done = sum(1 for t in trials if t.finished)
        active = len(trials) - done
        best = best_of(spec, trials)
        ended = active == 0 and (over_budget or self.exhausted or len(trials) >= total)
        status.update({
            "trials": [Trial(name=t.name, number=t.number, parameters=dict(t.values),
                             state=t.state, objective=t.objective, step=t.step,
                             credits=t.credits, reason=t.reason
                             ).model_dump(by_alias=True, exclude_none=True) for t in trials],
            "bestTrial": best.name if best else None,
            "bestObjective": best.objective if best else None,
            "bestParameters": dict(best.values) if best else None,
            "total": total, "done": done, "progress": f"{done}/{total}",
            "pending": counts["Pending"], "running": counts["Running"],
            "succeeded": counts["Succeeded"], "failed": counts["Failed"],
            "pruned": counts["Pruned"], "stopped": counts["Stopped"], "creditsUsed": spent,
        })
        self.budget_condition(trials, spent, over_budget)
        if not ended:
            message = f"{active} trials running or waiting, {done} of {total} done."
            self.st.condition(C.RUNNING, TRUE, R.TRIALS_RUNNING, message)
            self.st.condition(C.SUCCEEDED, FALSE, R.TRIALS_RUNNING, message)
            self.st.condition(C.FAILED, FALSE, R.TRIALS_RUNNING, message)
            phase = "Running" if trials else "Pending"
        elif best is not None:
            reason = R.MAX_CREDITS_REACHED if over_budget and done < total else R.ALL_TRIALS_DONE
            message = (f"Best trial {best.name}: {spec.objective.metric} {best.objective:.4g} "
                       f"with " + ", ".join(f"{k}={v}" for k, v in sorted(best.values.items())))
            self.st.condition(C.RUNNING, FALSE, reason, f"{done} of {total} trials done.")
            self.st.condition(C.SUCCEEDED, TRUE, reason, message + ".")
            self.st.condition(C.FAILED, FALSE, reason, message + ".")
            phase = "Succeeded"
            self.promote(best)
        else:
            self.fail(trials, over_budget)
            phase = "Failed"
        status["observedGeneration"] = self.st.generation
        status["phase"] = phase
        status["promoted"] = spec.promote.model_deployment if (
            spec.promote and phase == "Succeeded") else None
        self.st.transition_events(WARNING_TYPES, QUIET)
        return Plan(status={k: v for k, v in status.items() if v is not None},
                    children=self.children, prune=(), applies=self.applies,
                    events=self.st.events)

    def budget_condition(self, trials: Sequence[TrialRecord], spent: int,
                         over_budget: bool) -> None:
        limit = self.spec.max_credits
        if limit is None:
            return
        figures = (f"{spent} of maxCredits {limit} credits spent; the next trial is expected "
                   f"to cost {expected_cost(trials)}")
        if over_budget:
            policy = ("running trials were stopped" if self.spec.budget_policy == "stop"
                      else "running trials finish")
            self.st.condition(C.BUDGET_EXHAUSTED, TRUE, R.MAX_CREDITS_REACHED,
                              f"{figures}: no new trial starts; {policy}.")
        else:
            self.st.condition(C.BUDGET_EXHAUSTED, FALSE, "WithinBudget", figures + ".")

    def fail(self, trials: Sequence[TrialRecord], over_budget: bool) -> None:
        """No trial succeeded: Failed, with the most common diagnosis of the failed trials."""
        diagnoses = collections.Counter(t.diagnosis or "Unknown" for t in trials
                                        if t.state == "Failed")
        if diagnoses:
            reason, count = diagnoses.most_common(1)[0]
            example = next(t for t in trials if (t.diagnosis or "Unknown") == reason
                           and t.state == "Failed")
            message = (f"No trial succeeded; the most common diagnosis is {reason} "
                       f"({count} of {len(trials)} trials), e.g. {example.name}: "
                       f"{example.reason}. Fix the template and create a new Sweep.")
        else:
            message = "No trial succeeded (every trial was pruned or stopped)."
        if over_budget:
            message += f" maxCredits {self.spec.max_credits} was reached."
        self.st.condition(C.RUNNING, FALSE, R.ALL_TRIALS_FAILED, message)
        self.st.condition(C.FAILED, TRUE, R.ALL_TRIALS_FAILED, message)
        self.st.condition(C.SUCCEEDED, FALSE, R.ALL_TRIALS_FAILED, message)

    def promote(self, best: TrialRecord) -> None:
        """``promote``: point the ModelDeployment at the best trial (create it if missing)."""
        ref = promote_ref(self.observed.obj, self.spec)
        if ref is None or ref.namespace is None:
            return
        child = serve_run(ref.name, ref.namespace, best.name, self.observed.ref(ref))
        if child is not None:
            self.applies.append(child)
            self.st.event("Promoted", f"ModelDeployment {ref.name} now serves the best trial "
                          f"{best.name}.")


def plan(spec: SweepSpec, observed: Observed, facts: Facts) -> Plan:
    """The plan of one pass over a Sweep."""
    return _Pass(spec, observed, facts).run()


def on_error(observed: Observed, error: Exception, facts: Facts) -> Plan:
    """An invalid spec (Failed with InvalidSpec, a Warning) or a missing dependency (Running
    False with its own reason, no Warning; the frame requeues)."""
    meta = observed.obj["metadata"]
    st = StatusBuilder(observed.status, meta.get("generation"), facts.now_iso)
    if isinstance(error, DependencyNotReady):
        st.condition(C.RUNNING, FALSE, error.reason, str(error))
        phase = "Pending"
    else:
        st.condition(C.RUNNING, FALSE, R.INVALID_SPEC, str(error))
        st.condition(C.FAILED, TRUE, R.INVALID_SPEC, str(error))
        phase = "Failed"
    st.status["observedGeneration"] = meta.get("generation")
    st.status["phase"] = phase
    st.transition_events(WARNING_TYPES, QUIET)
    return Plan(status=st.status, events=st.events)
