"""The Sweep controller on a real API server + controller-manager (no kubelet).

Each trial is a real TrainingRun reconciled by the real TrainingRun controller; the tests play
the trainer and the kubelet: they write the trial's report ConfigMap the way the trainer
does (``arclight_trainer.report``) and its pod's status the way the kubelet does. What is
asserted is what a user sees: trials, their annotations and specs, the Sweep's status,
conditions and Events, and the promoted ModelDeployment.
"""
from __future__ import annotations

import collections
import json
import os
import random
import secrets
import time

import pytest
from arclight.api.trainer import EvaluationPoint, EvaluationSeries, ReportKey, TerminationReport
from arclight.core.facts import Facts
from arclight.core.plan import Observed
from arclight.search.kind import SWEEP
from arclight_trainer.report import configmap_data, progress_report
from kube import NO_NODE_SELECTOR, find_condition, wait_until
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.controller
GROUP, VERSION = "arclight.dev", "v1alpha1"
PARAMETERS = "arclight.dev/trial-parameters"
PRUNED = "arclight.dev/pruned"
WAIT = 60
LR = "hyperparameters.learningRate"


def custom(cluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(cluster.api)


def make_sweep(cluster, namespace, name, **spec) -> dict:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Sweep", "metadata": {"name": name},
            "spec": {"trainingRunTemplate": {
                "template": "math-solver", "hyperparameters": {"maxSteps": 4, "batchSize": 2},
                "evaluation": {"everySteps": 1}, "retry": {"maxAttempts": 1},
                "resources": {"nodeSelector": NO_NODE_SELECTOR}},
                "parameters": [{"name": LR, "type": "double", "min": "1e-6", "max": "1e-3",
                                "log": True}],
                "algorithm": "random", "seed": 5, **spec}}
    return custom(cluster).create_namespaced_custom_object(GROUP, VERSION, namespace, "sweeps",
                                                           body)


def get_sweep(cluster, namespace, name) -> dict:
    return custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace, "sweeps",
                                                        name)


def trials(cluster, namespace, sweep) -> dict[str, dict]:
    items = custom(cluster).list_namespaced_custom_object(
        GROUP, VERSION, namespace, "trainingruns",
        label_selector=f"arclight.dev/owner-name={sweep}")["items"]
    return {r["metadata"]["name"]: r for r in items}


def wait_trials(cluster, namespace, sweep, count, timeout=WAIT) -> dict[str, dict]:
    def enough():
        found = trials(cluster, namespace, sweep)
        return found if len(found) >= count else None
    return wait_until(enough, timeout, what=f"{count} trials of {sweep}")


def pod_of(cluster, namespace, trial) -> str:
    def pods():
        return client.CoreV1Api(cluster.api).list_namespaced_pod(
            namespace, label_selector=f"job-name={trial}-trainer-1").items
    return wait_until(pods, WAIT, what=f"the pod of {trial}")[0].metadata.name


def set_pod(cluster, namespace, pod, phase, state) -> None:
    client.CoreV1Api(cluster.api).patch_namespaced_pod_status(pod, namespace, {"status": {
        "phase": phase, "containerStatuses": [{
            "name": "trainer", "image": "docker.io/arclight/trainer:test", "imageID": "",
            "ready": phase == "Running", "restartCount": 0, "state": state}]}})


def report(cluster, namespace, trial, series) -> None:
    """Write the trial's report as the trainer does: progress and the evaluations so far."""
    points = [EvaluationPoint(step=s, validation_reward=v) for s, v in series]
    data = configmap_data({ReportKey.PROGRESS: progress_report(series[-1][0], 4, 1, 1.0),
                           ReportKey.EVALUATIONS: EvaluationSeries(points=points)})
    client.CoreV1Api(cluster.api).patch_namespaced_config_map(
        f"{trial}-report", namespace, {"data": data})


def start(cluster, namespace, trial, series) -> None:
    set_pod(cluster, namespace, pod_of(cluster, namespace, trial), "Running",
            {"running": {"startedAt": "2024-01-01T00:00:00Z"}})
    report(cluster, namespace, trial, series)


def end(cluster, namespace, trial, exit_code=0, failure="") -> None:
    message = TerminationReport(reason=failure, message=f"{failure} in the test").to_json() \
        if exit_code else ""
    set_pod(cluster, namespace, pod_of(cluster, namespace, trial),
            "Succeeded" if exit_code == 0 else "Failed",
            {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0
                            else "Error", "message": message,
                            "startedAt": "2024-01-01T00:00:00Z",
                            "finishedAt": "2024-01-01T00:01:00Z"}})


def run_through(cluster, namespace, trial, final, exit_code=0, failure="") -> None:
    series = [(0, 0.1), (2, final * 0.8), (4, final)]
    start(cluster, namespace, trial, series)
    end(cluster, namespace, trial, exit_code, failure)


def sweep_condition(cluster, namespace, name, type_, status="True", timeout=WAIT) -> dict:
    def check():
        cond = find_condition(get_sweep(cluster, namespace, name), type_)
        return cond if cond and cond["status"] == status else None
    return wait_until(check, timeout, what=f"{name}: {type_}={status}")


def events(cluster, namespace, name) -> list[tuple[str, str, str]]:
    items = client.CoreV1Api(cluster.api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason, e.message) for e in items]


# --- tests ---------------------------------------------------------------------------------

def test_a_sweep_runs_prunes_and_promotes_its_best_trial(cluster, namespace, operator):
    sweep = make_sweep(cluster, namespace, "lr", maxTrials=4, parallelism=2,
                       earlyStopping={"algorithm": "median", "minSteps": 1, "startupTrials": 1},
                       promote={"modelDeployment": "math"})
    first = wait_trials(cluster, namespace, "lr", 2)
    assert sorted(first) == ["lr-t000", "lr-t001"]
    for run in first.values():
        (owner,) = run["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("Sweep", sweep["metadata"]["uid"])
        lr = json.loads(run["metadata"]["annotations"][PARAMETERS])[LR]
        assert run["spec"]["hyperparameters"]["learningRate"] == lr
    time.sleep(2)
    assert len(trials(cluster, namespace, "lr")) == 2  # parallelism holds
    run_through(cluster, namespace, "lr-t000", 0.8)
    run_through(cluster, namespace, "lr-t001", 0.6)
    later = wait_trials(cluster, namespace, "lr", 4)
    assert sorted(later) == ["lr-t000", "lr-t001", "lr-t002", "lr-t003"]
    # A weak trial is pruned: suspended (its checkpoint kept), marked, its slot reused.
    start(cluster, namespace, "lr-t002", [(0, 0.1), (1, 0.05), (2, 0.05)])
    pruned = wait_until(lambda: (r := trials(cluster, namespace, "lr")["lr-t002"])["spec"].get(
        "suspend") and r, WAIT, what="lr-t002 suspended")
    assert "median rule at step 2" in pruned["metadata"]["annotations"][PRUNED]
    run_through(cluster, namespace, "lr-t003", 0.9)
    sweep_condition(cluster, namespace, "lr", "Succeeded")
    status = get_sweep(cluster, namespace, "lr")["status"]
    assert status["phase"] == "Succeeded" and status["progress"] == "4/4"
    assert status["bestTrial"] == "lr-t003" and status["bestObjective"] == 0.9
    assert (status["succeeded"], status["pruned"]) == (3, 1)
    table = {t["name"]: (t["state"], t.get("objective")) for t in status["trials"]}
    assert table == {"lr-t000": ("Succeeded", 0.8), "lr-t001": ("Succeeded", 0.6),
                     "lr-t002": ("Pruned", 0.05), "lr-t003": ("Succeeded", 0.9)}
    md = wait_until(lambda: _get_md(cluster, namespace, "math"), WAIT, what="the promotion")
    assert md["spec"]["source"] == {"trainingRun": "lr-t003"}
    reasons = wait_until(lambda: (r := [r for _, r, _ in events(cluster, namespace, "lr")])
                         and "Promoted" in r and r, WAIT, what="the Promoted Event")
    assert reasons.count("TrialCreated") == 4 and "TrialPruned" in reasons
    # Deleting the Sweep deletes its trials (owner references; the garbage collector).
    custom(cluster).delete_namespaced_custom_object(GROUP, VERSION, namespace, "sweeps", "lr")
    wait_until(lambda: not trials(cluster, namespace, "lr"), WAIT, what="trials deleted")
    assert _get_md(cluster, namespace, "math") is not None  # the promoted deployment stays


def _get_md(cluster, namespace, name):
    try:
        return custom(cluster).get_namespaced_custom_object(GROUP, VERSION, namespace,
                                                            "modeldeployments", name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_scale_changes_parallelism(cluster, namespace, operator):
    make_sweep(cluster, namespace, "wide", maxTrials=6, parallelism=1)
    wait_trials(cluster, namespace, "wide", 1)
    custom(cluster).patch_namespaced_custom_object_scale(
        GROUP, VERSION, namespace, "sweeps", "wide", {"spec": {"replicas": 3}})
    assert sorted(wait_trials(cluster, namespace, "wide", 3)) == [
        "wide-t000", "wide-t001", "wide-t002"]
    assert get_sweep(cluster, namespace, "wide")["spec"]["parallelism"] == 3


def test_a_bad_parameter_is_refused_naming_it(cluster, namespace, operator):
    make_sweep(cluster, namespace, "bad", parameters=[
        {"name": "hyperparameters.scheduler", "type": "categorical",
         "values": ["cosine", "stepwise"]}])
    failed = sweep_condition(cluster, namespace, "bad", "Failed")
    assert failed["reason"] == "InvalidSpec"
    assert "parameters[hyperparameters.scheduler]" in failed["message"]
    assert trials(cluster, namespace, "bad") == {}
    wait_until(lambda: ("Warning", "InvalidSpec") in {
        (t, r) for t, r, _ in events(cluster, namespace, "bad")}, WAIT, what="the Warning")


def test_a_sweep_whose_every_trial_fails_says_the_common_diagnosis(cluster, namespace,
                                                                    operator):
    make_sweep(cluster, namespace, "doomed", maxTrials=2, parallelism=2)
    for trial in wait_trials(cluster, namespace, "doomed", 2):
        run_through(cluster, namespace, trial, 0.1, exit_code=2, failure="DatasetInvalid")
    failed = sweep_condition(cluster, namespace, "doomed", "Failed")
    assert "DatasetInvalid (2 of 2 trials)" in failed["message"]


def _expected_values(seed: int, count: int) -> list[dict]:
    """The values the pure plan gives trials 0..count-1 of the kill test's sweep."""
    obj = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Sweep",
           "metadata": {"name": "k", "namespace": "ns", "uid": "u"},
           "spec": {"trainingRunTemplate": {"template": "math-solver"},
                    "parameters": [{"name": LR, "type": "double", "min": "1e-6",
                                    "max": "1e-3", "log": True}],
                    "algorithm": "random", "seed": seed, "maxTrials": count,
                    "parallelism": count}}
    plan = SWEEP.plan(SWEEP.parse(obj), Observed(obj), Facts())
    return [json.loads(c.manifest["metadata"]["annotations"][PARAMETERS]) for c in plan.children]


def test_kill_9_during_a_sweep_loses_and_duplicates_no_trial(cluster, namespace, operator):
    seed = int(os.environ.get("ARCLIGHT_TEST_SEED") or secrets.randbelow(2**31))
    rng = random.Random(seed)
    print(f"\nsweep kill -9 test: seed={seed} (rerun with ARCLIGHT_TEST_SEED={seed})")
    total = 9
    make_sweep(cluster, namespace, "k", maxTrials=total, parallelism=3, seed=seed % 1000)
    done: set[str] = set()
    kills = 0
    outcomes = {}
    while len(done) < total:
        live = wait_trials(cluster, namespace, "k", min(total, len(done) + 3), timeout=120)
        assert len(live) <= min(total, len(done) + 3), f"more than parallelism: {sorted(live)}"
        pending = sorted(set(live) - done)
        trial = rng.choice(pending)
        failing = len(done) == 4  # one trial fails; the sweep goes on
        outcomes[trial] = "Failed" if failing else "Succeeded"
        run_through(cluster, namespace, trial, rng.uniform(0.2, 0.9),
                    exit_code=2 if failing else 0, failure="DatasetInvalid" if failing else "")
        done.add(trial)
        if kills < 3 and rng.random() < 0.6:
            time.sleep(rng.uniform(0.0, 0.8))
            operator.kill()
            kills += 1
            time.sleep(rng.uniform(0.3, 2.0))
            operator.start(wait=False)
    operator.wait_ready()
    sweep_condition(cluster, namespace, "k", "Succeeded", timeout=120)
    live = trials(cluster, namespace, "k")
    assert sorted(live) == [f"k-t{i:03d}" for i in range(total)]  # none lost, none doubled
    values = [json.loads(live[f"k-t{i:03d}"]["metadata"]["annotations"][PARAMETERS])
              for i in range(total)]
    assert values == _expected_values(seed % 1000, total)  # the suggestions it would make
    status = get_sweep(cluster, namespace, "k")["status"]
    states = collections.Counter(t["state"] for t in status["trials"])
    assert states == collections.Counter(outcomes.values())
    assert status["failed"] == 1 and status["progress"] == f"{total}/{total}"
