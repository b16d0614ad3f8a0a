"""Table tests of the Sweep plan: trials as observed in, new trials, stops, status,
conditions and Events out (no cluster, no clock). Optuna is real; the trials are
TrainingRun objects as the TrainingRun controller leaves them."""
from __future__ import annotations

import copy
import dataclasses
import json

import pytest
from arclight.core.costs import Metering
from arclight.core.errors import DependencyNotReady, InvalidSpec
from arclight.core.facts import Facts
from arclight.core.plan import ObjectRef, Observed
from arclight.search.kind import SWEEP
from arclight.search.trials import PARAMETERS_ANNOTATION, PRUNED_ANNOTATION, STOPPED_ANNOTATION

pytestmark = pytest.mark.unit
LR = "hyperparameters.learningRate"
METERED = Facts(metering=Metering(enabled=True))
PLAIN = Facts()


def sweep(**spec) -> dict:
    base = {"trainingRunTemplate": {"template": "math-solver", "evaluation": {"everySteps": 1},
                                    "hyperparameters": {"maxSteps": 6}},
            "parameters": [{"name": LR, "type": "double", "min": "1e-6", "max": "1e-3",
                            "log": True}],
            "algorithm": "random", "maxTrials": 4, "parallelism": 2, "seed": 11}
    return {"apiVersion": "arclight.dev/v1alpha1", "kind": "Sweep",
            "metadata": {"name": "lr", "namespace": "ns", "uid": "uid-1", "generation": 1},
            "spec": {**base, **spec}}


def run(name: str, values: dict, state: str = "Running", series=(), credits: int = 0,
        diagnosis: str | None = None, annotations: dict | None = None) -> dict:
    """A trial TrainingRun as the TrainingRun controller leaves it."""
    conditions = {"Running": [{"type": "Running", "status": "True", "reason": "Training"}],
                  "Pending": [{"type": "Admitted", "status": "False", "reason": "BudgetExceeded",
                               "message": "team budget spent"}],
                  "Succeeded": [{"type": "Succeeded", "status": "True", "reason": "Completed"}],
                  "Failed": [{"type": "Failed", "status": "True", "reason": "OutOfMemory",
                              "message": "the trainer ran out of memory"}]}[state]
    status = {"conditions": conditions, "cost": {"credits": credits},
              "evaluations": {"points": [{"step": s, "validationReward": v} for s, v in series]},
              "progress": {"step": series[-1][0] if series else 0}}
    if diagnosis:
        status["diagnosis"] = {"reason": diagnosis}
    return {"apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": name, "namespace": "ns", "annotations": {
                PARAMETERS_ANNOTATION: json.dumps(values), **(annotations or {})}},
            "spec": {}, "status": status}


def observed(obj: dict, *runs: dict, refs: dict | None = None) -> Observed:
    return Observed(obj, {"TrainingRun": {r["metadata"]["name"]: r for r in runs}}, refs or {})


def plan(obj: dict, *runs: dict, facts: Facts = PLAIN, refs: dict | None = None):
    return SWEEP.plan(SWEEP.parse(obj), observed(obj, *runs, refs=refs), facts)


def created(p) -> dict[str, dict]:
    """Trials the plan creates: name -> parameter values."""
    return {c.name: json.loads(c.manifest["metadata"]["annotations"][PARAMETERS_ANNOTATION])
            for c in p.children if c.patch is None}


def halted(p) -> dict[str, dict]:
    return {c.name: c.patch for c in p.children if c.patch is not None}


def condition(p, type_: str) -> dict:
    return next(c for c in p.status["conditions"] if c["type"] == type_)


def grow(obj: dict, p, state: str = "Running", **kwargs) -> list[dict]:
    """The trials a plan created, as runs in ``state``."""
    return [run(name, values, state, **kwargs) for name, values in created(p).items()]


# --- trials -------------------------------------------------------------------------------

def test_the_first_pass_fills_parallelism_with_named_owned_trials_of_the_template():
    p = plan(sweep())
    assert list(created(p)) == ["lr-t000", "lr-t001"]
    trial = p.children[0].manifest
    assert trial["metadata"]["ownerReferences"][0]["kind"] == "Sweep"
    assert trial["spec"]["template"] == "math-solver"
    value = created(p)["lr-t000"][LR]
    assert trial["spec"]["hyperparameters"]["learningRate"] == value
    assert 1e-6 <= float(value) <= 1e-3
    assert p.status["progress"] == "0/4" and p.status["phase"] == "Running"
    assert condition(p, "Running")["status"] == "True"
    assert [e.reason for e in p.events].count("TrialCreated") == 2


def test_suggestions_are_seeded_and_the_same_when_a_pass_is_repeated():
    first, again = plan(sweep()), plan(sweep())
    assert created(first) == created(again)
    other = plan(sweep(seed=12))
    assert created(other) != created(first)
    unseeded = sweep()
    del unseeded["spec"]["seed"]
    assert created(plan(unseeded)) == created(plan(copy.deepcopy(unseeded)))  # seed from uid


def test_existing_trials_are_never_created_again_and_a_freed_slot_takes_the_next_number():
    obj = sweep()
    runs = grow(obj, plan(obj))
    assert created(plan(obj, *runs)) == {}
    runs[0] = run("lr-t000", json.loads(runs[0]["metadata"]["annotations"][
        PARAMETERS_ANNOTATION]), "Succeeded", series=[(0, 0.1), (6, 0.5)])
    assert list(created(plan(obj, *runs))) == ["lr-t002"]


def test_scaling_parallelism_up_starts_more_trials_and_never_beyond_max_trials():
    obj = sweep(parallelism=2)
    runs = grow(obj, plan(obj))
    assert list(created(plan(sweep(parallelism=3), *runs))) == ["lr-t002"]
    assert list(created(plan(sweep(parallelism=10), *runs))) == ["lr-t002", "lr-t003"]


def test_parameters_reach_any_spec_path_reward_weights_and_agent_env():
    obj = sweep(parameters=[
        {"name": "reward.components[taskSuccess].weight", "type": "categorical",
         "values": ["0.5", "2"]},
        {"name": "hyperparameters.batchSize", "type": "int", "min": "2", "max": "8"},
        {"name": "agent.env[PROMPT_STYLE].value", "type": "categorical",
         "values": ["terse", "verbose"]}],
        trainingRunTemplate={"agent": {"image": "registry.local/agent:1",
                                       "entrypoint": "agent:rollout"},
                             "dataset": {"uri": "pvc://data/train.jsonl"},
                             "evaluation": {"everySteps": 1}})
    p = plan(obj)
    spec = p.children[0].manifest["spec"]
    values = created(p)["lr-t000"]
    assert spec["reward"]["components"][0] == {
        "name": "taskSuccess", "weight": values["reward.components[taskSuccess].weight"],
        "params": {}}
    assert spec["hyperparameters"]["batchSize"] == int(values["hyperparameters.batchSize"])
    assert {"name": "PROMPT_STYLE", "value": values["agent.env[PROMPT_STYLE].value"]} in \
        spec["agent"]["env"]


# --- validation ----------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "named"), [
    ({"parameters": [{"name": "hyperparameters.learningRat", "type": "double", "min": "1",
                      "max": "2"}]}, "hyperparameters.learningRat"),
    ({"parameters": [{"name": "hyperparameters.batchSize", "type": "categorical",
                      "values": ["4", "many"]}]}, "parameters[hyperparameters.batchSize]"),
    ({"parameters": [{"name": "hyperparameters.scheduler", "type": "categorical",
                      "values": ["cosine", "stepwise"]}]}, "parameters[hyperparameters.scheduler]"),
    ({"trainingRunTemplate": {"template": "math-solver", "deploy": {"enabled": True}}},
     "trainingRunTemplate.deploy.enabled"),
    ({"earlyStopping": {"algorithm": "median"},
      "trainingRunTemplate": {"template": "math-solver"}}, "evaluation.everySteps"),
    ({"algorithm": "grid"}, "grid search needs explicit values"),
    ({"parameters": [{"name": "hyperparameters.batchSize", "type": "int",
                      "values": ["2", "four"]}]}, "'four' is not an int"),
    ({"parameters": [{"name": LR, "type": "double", "values": ["1e-5"], "log": True}]},
     "set values or min/max"),
    ({"earlyStopping": {"algorithm": "median", "reductionFactor": 2}},
     "earlyStopping.reductionFactor: applies to algorithm asha only"),
    ({"budgetPolicy": "stop"}, "budgetPolicy: applies with maxCredits only"),
    ({"trainingRunTemplate": {"template": "math-solver", "ttlSecondsAfterFinished": 60}},
     "trainingRunTemplate.ttlSecondsAfterFinished"),
    ({"trainingRunTemplate": {"template": "math-solver", "suspend": True}},
     "trainingRunTemplate.suspend"),
])
def test_a_bad_parameter_or_template_is_refused_naming_the_field(change, named):
    with pytest.raises(InvalidSpec, match=named.replace("[", r"\[").replace("]", r"\]")):
        SWEEP.parse(sweep(**change))


def test_an_invalid_sweep_fails_with_one_warning_and_no_trials():
    obj = sweep()
    p = SWEEP.on_error(Observed(obj), InvalidSpec("spec.parameters[x]: bad"), Facts())
    assert p.status["phase"] == "Failed" and not p.children
    assert [e.warning for e in p.events] == [True]


# --- results -------------------------------------------------------------------------------

def _finished(obj: dict, objectives: list[float], state: str = "Succeeded", **kwargs
              ) -> list[dict]:
    values = [json.loads(a) for a in _values(obj, len(objectives))]
    return [run(f"lr-t{i:03d}", v, state, series=[(0, 0.1), (6, o)], credits=10, **kwargs)
            for i, (v, o) in enumerate(zip(values, objectives, strict=True))]


def _values(obj: dict, count: int) -> list[str]:
    """The values the sweep would give its first ``count`` trials (one pass at a time)."""
    runs: list[dict] = []
    while len(runs) < count:
        p = plan(obj, *runs, facts=METERED)
        runs += [run(n, v, "Succeeded", series=[(6, 0.0)]) for n, v in created(p).items()]
    return [r["metadata"]["annotations"][PARAMETERS_ANNOTATION] for r in runs[:count]]


def test_a_finished_sweep_succeeds_names_the_best_trial_and_promotes_it():
    obj = sweep(promote={"modelDeployment": "math"})
    runs = _finished(obj, [0.4, 0.7, 0.7, 0.2])
    p = plan(obj, *runs)
    assert p.status["bestTrial"] == "lr-t001"  # tie with t002: the lower number
    assert p.status["bestObjective"] == 0.7
    assert p.status["progress"] == "4/4" and p.status["phase"] == "Succeeded"
    assert p.status["succeeded"] == 4 and p.status["creditsUsed"] == 40
    assert condition(p, "Succeeded")["status"] == "True"
    assert condition(p, "Running")["status"] == "False"
    md = p.applies[0]
    assert md.manifest["kind"] == "ModelDeployment"
    assert md.manifest["spec"]["source"] == {"trainingRun": "lr-t001"}
    served = {"spec": {"source": {"trainingRun": "lr-t001"}}}
    ref = ObjectRef("arclight.dev/v1alpha1", "ModelDeployment", "math", "ns")
    assert plan(obj, *runs, refs={ref: served}).applies == []


def test_minimize_picks_the_lowest_objective():
    obj = sweep(objective={"metric": "validationReward", "direction": "minimize"})
    assert plan(obj, *_finished(obj, [0.4, 0.7, 0.1, 0.2])).status["bestTrial"] == "lr-t002"


def test_a_sweep_whose_every_trial_fails_ends_failed_with_the_most_common_diagnosis():
    obj = sweep()
    runs = _finished(obj, [0, 0, 0, 0], "Failed", diagnosis="OutOfMemory")
    runs[3]["status"]["diagnosis"] = {"reason": "Diverged"}
    p = plan(obj, *runs)
    assert p.status["phase"] == "Failed"
    failed = condition(p, "Failed")
    assert failed["status"] == "True" and "OutOfMemory (3 of 4 trials)" in failed["message"]
    assert any(e.warning for e in p.events)


def test_a_failed_trial_counts_as_failed_and_the_sweep_goes_on():
    obj = sweep()
    runs = _finished(obj, [0, 0.5], "Failed", diagnosis="OutOfMemory")
    p = plan(obj, *runs)
    assert p.status["failed"] == 2 and list(created(p)) == ["lr-t002", "lr-t003"]


def test_a_trial_held_by_its_budget_shows_why():
    obj = sweep()
    runs = grow(obj, plan(obj), "Pending")
    trial = plan(obj, *runs).status["trials"][0]
    assert trial["state"] == "Pending" and "BudgetExceeded" in trial["reason"]


# --- early stopping -------------------------------------------------------------------------

def _race(obj: dict, weak: list[tuple[int, float]]) -> tuple[list[dict], dict]:
    """Two finished strong trials and a running weak one."""
    runs = _finished(obj, [0.8, 0.9])
    for r in runs:
        r["status"]["evaluations"]["points"] = [
            {"step": s, "validationReward": 0.5 + 0.05 * s} for s in range(7)]
    values = json.loads(_values(obj, 3)[2])
    return runs, run("lr-t002", values, "Running", series=weak)


@pytest.mark.parametrize("rule", ["median", "asha"])
def test_a_weak_running_trial_is_pruned_kept_suspended_and_its_slot_goes_on(rule):
    extra = {"startupTrials": 1} if rule == "median" else {}
    obj = sweep(earlyStopping={"algorithm": rule, "minSteps": 1, **extra}, parallelism=1)
    runs, weak = _race(obj, [(0, 0.1), (1, 0.1)])
    p = plan(obj, *runs, weak)
    assert halted(p)["lr-t002"]["spec"] == {"suspend": True}
    reason = halted(p)["lr-t002"]["metadata"]["annotations"][PRUNED_ANNOTATION]
    assert f"{rule} rule at step 1" in reason
    assert list(created(p)) == ["lr-t003"]  # its slot goes to the next trial
    assert p.status["pruned"] == 1
    assert any(e.reason == "TrialPruned" for e in p.events)
    weak["metadata"]["annotations"][PRUNED_ANNOTATION] = reason  # as applied
    again = plan(obj, *runs, weak)
    assert halted(again) == {} and again.status["trials"][2]["state"] == "Pruned"


def test_only_the_newest_evaluation_is_judged():
    """A step judged in an earlier pass is not judged again (live Optuna judges each report
    once); ASHA does not cut a rung whose next rung lies past the trial's last step."""
    obj = sweep(earlyStopping={"algorithm": "median", "minSteps": 1, "startupTrials": 1})
    runs, recovered = _race(obj, [(0, 0.1), (1, 0.1), (2, 0.9)])
    assert halted(plan(obj, *runs, recovered)) == {}
    obj = sweep(earlyStopping={"algorithm": "asha", "minSteps": 2, "reductionFactor": 3})
    runs, late = _race(obj, [(0, 0.1), (2, 0.6), (6, 0.1)])
    late["status"]["progress"]["totalSteps"] = 10  # rung 1 (step 6) would promote to 18
    assert halted(plan(obj, *runs, late)) == {}
    late["status"]["progress"]["totalSteps"] = 20
    assert "asha rule at step 6" in halted(plan(obj, *runs, late))["lr-t002"][
        "metadata"]["annotations"][PRUNED_ANNOTATION]


def test_pruning_waits_for_min_steps_and_spares_a_strong_trial():
    obj = sweep(earlyStopping={"algorithm": "median", "minSteps": 3, "startupTrials": 1})
    runs, weak = _race(obj, [(0, 0.1), (1, 0.1), (2, 0.1)])
    assert halted(plan(obj, *runs, weak)) == {}
    runs, strong = _race(obj, [(s, 0.9) for s in range(5)])
    assert halted(plan(obj, *runs, strong)) == {}


# --- budget ----------------------------------------------------------------------------------

def test_no_trial_starts_that_would_pass_max_credits_and_the_sweep_ends_budget_exhausted():
    obj = sweep(maxCredits=25, maxTrials=6)
    runs = _finished(obj, [0.3, 0.6])  # 10 credits each: a third would make 30
    p = plan(obj, *runs, facts=METERED)
    assert created(p) == {}
    exhausted = condition(p, "BudgetExhausted")
    assert exhausted["status"] == "True" and "20 of maxCredits 25" in exhausted["message"]
    assert "expected to cost 10" in exhausted["message"]
    assert p.status["phase"] == "Succeeded" and p.status["bestTrial"] == "lr-t001"
    assert condition(p, "Succeeded")["reason"] == "MaxCreditsReached"


def test_within_budget_trials_start_and_the_condition_shows_the_figures():
    obj = sweep(maxCredits=100)
    p = plan(obj, *_finished(obj, [0.3]), facts=METERED)
    assert list(created(p)) == ["lr-t001", "lr-t002"]
    assert condition(p, "BudgetExhausted")["status"] == "False"


def test_budget_policy_stop_suspends_the_running_trials():
    obj = sweep(maxCredits=25, budgetPolicy="stop", maxTrials=6, parallelism=3)
    runs = _finished(obj, [0.3, 0.6])
    values = json.loads(_values(obj, 3)[2])
    runs.append(run("lr-t002", values, "Running", series=[(0, 0.2)], credits=6))
    p = plan(obj, *runs, facts=METERED)
    assert halted(p)["lr-t002"]["spec"] == {"suspend": True}
    assert STOPPED_ANNOTATION in halted(p)["lr-t002"]["metadata"]["annotations"]
    assert p.status["stopped"] == 1 and p.status["creditsUsed"] == 26


def test_max_credits_without_a_ledger_waits_for_one():
    obj = sweep(maxCredits=100)
    with pytest.raises(DependencyNotReady, match="spec.maxCredits"):
        plan(obj)


# --- grid and warm start ---------------------------------------------------------------------

def test_grid_visits_every_point_once():
    obj = sweep(algorithm="grid", maxTrials=100, parallelism=3, parameters=[
        {"name": LR, "type": "double", "values": ["1e-5", "1e-4"]},
        {"name": "hyperparameters.batchSize", "type": "int", "min": "2", "max": "4"}])
    runs: list[dict] = []
    for _ in range(4):
        p = plan(obj, *runs)
        runs += [run(n, v, "Succeeded", series=[(6, 0.1)]) for n, v in created(p).items()]
    points = [json.loads(r["metadata"]["annotations"][PARAMETERS_ANNOTATION]) for r in runs]
    assert len(points) == 6 and len({json.dumps(v, sort_keys=True) for v in points}) == 6
    assert plan(obj, *runs).status["progress"] == "6/6"


def test_warm_start_needs_its_sweeps_and_reuses_their_trials():
    obj = sweep(algorithm="grid", warmStartFrom=["first"], parameters=[
        {"name": LR, "type": "double", "values": ["1e-5", "1e-4", "1e-3"]}], maxTrials=3)
    with pytest.raises(DependencyNotReady, match="warmStartFrom"):
        plan(obj)
    first = {"status": {"trials": [
        {"name": "first-t000", "parameters": {LR: "1e-05"}, "state": "Succeeded",
         "objective": 0.5, "step": 6},
        {"name": "first-t001", "parameters": {LR: "0.0001"}, "state": "Succeeded",
         "objective": 0.6, "step": 6}]}}
    ref = ObjectRef("arclight.dev/v1alpha1", "Sweep", "first", "ns")
    p = plan(dataclasses.replace(Observed(obj)).obj, refs={ref: first})
    assert created(p)["lr-t000"] == {LR: "0.001"}  # the one point the first sweep lacks


def test_a_trial_without_a_series_counts_with_its_latest_figure():
    obj = sweep(maxTrials=2)
    runs = _finished(obj, [0.3, 0.6])
    del runs[1]["status"]["evaluations"]
    runs[1]["status"]["metrics"] = {"validationReward": 0.7}
    p = plan(obj, *runs)
    assert p.status["bestTrial"] == "lr-t001" and p.status["bestObjective"] == 0.7


def test_the_sweep_reads_its_warm_start_sweeps_and_its_promotion():
    obj = sweep(warmStartFrom=["a", "b"], promote={"modelDeployment": "math"})
    refs = SWEEP.references(obj, SWEEP.parse(obj))
    assert [(r.kind, r.name, r.namespace) for r in refs] == [
        ("Sweep", "a", "ns"), ("Sweep", "b", "ns"), ("ModelDeployment", "math", "ns")]
