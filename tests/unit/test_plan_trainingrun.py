"""Table tests of the TrainingRun plan: observed world in, children/status/Events out.

No cluster: a tiny in-memory world plays the API server's part (what a plan creates is
observed by the next pass; the test writes the Job and pod states the job controller and the
kubelet would). Each test drives a run through the decisions a user can see.
"""
from __future__ import annotations

import copy
import datetime
import json

import pytest
from arclight.api.trainer import ExitCode
from arclight.core.errors import DependencyNotReady, InvalidSpec
from arclight.core.facts import Capabilities, Facts
from arclight.core.plan import ObjectRef, Observed, Plan
from arclight.training import builders as build
from arclight.training.plan import on_error, plan
from arclight.training.validation import validate_trainingrun

pytestmark = pytest.mark.unit
NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
MODERN = Capabilities(job_suspend=True, job_ttl=True)
K8S_120 = Capabilities(hpa_api_version="autoscaling/v2beta2", job_suspend=False, job_ttl=False)


class World:
    """One run and its children as the API server would hold them."""

    def __init__(self, caps: Capabilities = MODERN, **spec) -> None:
        self.run = {"apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun",
                    "metadata": {"name": "r", "namespace": "ns", "uid": "u-1",
                                 "generation": 1, "annotations": {}},
                    "spec": {"template": "math-solver",
                             "hyperparameters": {"maxSteps": 4, "batchSize": 8}, **spec},
                    "status": {}}
        self.children: dict[str, dict[str, dict]] = {}
        self.refs: dict[ObjectRef, dict | None] = {}
        self.facts = Facts(trainer_image="img:1", capabilities=caps, now=NOW)

    def observed(self) -> Observed:
        return Observed(copy.deepcopy(self.run), copy.deepcopy(self.children), self.refs)

    def step(self) -> Plan:
        """One pass, its plan applied to the world (creates, patches, prunes, status)."""
        try:
            result = plan(validate_trainingrun(self.run), self.observed(), self.facts)
        except (InvalidSpec, DependencyNotReady) as exc:
            result = on_error(self.observed(), exc, self.facts)
        for child in result.children:
            kind = self.children.setdefault(child.kind, {})
            if child.name not in kind:
                kind[child.name] = copy.deepcopy(child.manifest)
            elif child.patch:
                kind[child.name]["spec"].update(child.patch["spec"])
            elif not child.create_only:
                kind[child.name] = copy.deepcopy(child.manifest)
        wanted = {(c.kind, c.name) for c in result.children}
        for kind in result.prune:
            for name in list(self.children.get(kind, {})):
                if (kind, name) not in wanted:
                    del self.children[kind][name]
        if result.object_patch:
            self.run["metadata"]["annotations"].update(
                result.object_patch["metadata"]["annotations"])
        self.run["status"] = copy.deepcopy(result.status)
        return result

    # --- what the job controller and the kubelet write -------------------------------------

    def job(self, attempt: int = 1) -> dict:
        return self.children["Job"][build.job_name("r", attempt)]

    def pod(self, attempt: int = 1, **status) -> None:
        job = build.job_name("r", attempt)
        self.children.setdefault("Pod", {})[f"{job}-x"] = {
            "kind": "Pod", "metadata": {"name": f"{job}-x", "labels": {"job-name": job}},
            "status": status}

    def job_finished(self, type_: str, attempt: int = 1, reason: str = "") -> None:
        self.job(attempt)["status"] = {"conditions": [
            {"type": type_, "status": "True", "reason": reason, "message": ""}]}

    def trainer_exited(self, code: int, reason: str = "Error", attempt: int = 1,
                       message: str = "") -> None:
        self.pod(attempt, phase="Failed", containerStatuses=[{"name": "trainer", "state": {
            "terminated": {"exitCode": code, "reason": reason, "message": message}}}])
        self.job_finished("Failed", attempt, "BackoffLimitExceeded")


def conditions(result: Plan) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in result.status["conditions"]}


def names(result: Plan, kind: str) -> list[str]:
    return [c.name for c in result.children if c.kind == kind]


def config_of(world: World) -> dict:
    return json.loads(world.children["ConfigMap"]["r-config"]["data"]["config.json"])


# --- the first pass ----------------------------------------------------------------------------

def test_a_new_run_gets_its_children_resolved_status_and_two_events():
    world = World()
    result = world.step()
    assert sorted((c.kind, c.name) for c in result.children) == [
        ("ConfigMap", "r-config"), ("ConfigMap", "r-report"), ("Job", "r-trainer-1"),
        ("Role", "r-trainer"), ("RoleBinding", "r-trainer"), ("Service", "r-gateway"),
        ("ServiceAccount", "r-trainer")]
    assert [c.kind for c in result.children][-1] == "Job"  # after what its pod needs
    assert {c.name for c in result.children if c.create_only} == {"r-report", "r-trainer-1"}
    assert world.job()["spec"]["suspend"] is False
    status = result.status
    assert status["attempts"] == 1 and status["phase"] == "Admitted"
    assert status["startTime"] == "2026-12-01T12:00:00Z" and status["observedGeneration"] == 1
    assert status["resolved"]["hyperparameters"]["batchSize"] == 8
    assert conditions(result) == {"Admitted": ("True", "Resolved"),
                                  "Degraded": ("False", "AsExpected"),
                                  "Running": ("False", "Starting")}
    assert [e.reason for e in result.events] == ["AttemptStarted", "Resolved"]


def test_a_second_pass_over_an_unchanged_world_changes_nothing():
    world = World()
    world.step()
    before = copy.deepcopy(world.run["status"])
    result = world.step()
    assert result.status == before and result.events == [] and result.object_patch is None
    job = next(c for c in result.children if c.kind == "Job")
    assert job.create_only and job.patch is None  # the Job is never re-applied


def test_a_running_pod_makes_the_run_running():
    world = World()
    world.step()
    world.pod(phase="Running")
    result = world.step()
    assert conditions(result)["Running"] == ("True", "Training")
    assert result.status["phase"] == "Running"
    assert [e.reason for e in result.events] == ["Training"]


def test_the_report_channel_fills_progress_and_metrics():
    world = World()
    world.step()
    world.children["ConfigMap"]["r-report"]["data"] = {
        "progress": json.dumps({"step": 2, "totalSteps": 4})}
    assert world.step().status["progress"]["percent"] == 50


# --- admission: suspend and Kueue --------------------------------------------------------------

@pytest.mark.parametrize("caps", [MODERN, K8S_120])
def test_a_run_created_suspended_starts_nothing_until_resumed(caps):
    world = World(caps, suspend=True)
    result = world.step()
    assert result.children == [] and result.status["phase"] == "Suspended"
    assert conditions(result)["Running"] == ("False", "Suspended")
    world.run["spec"]["suspend"] = False
    assert names(world.step(), "Job") == ["r-trainer-1"]


def test_suspending_a_live_run_patches_its_job_where_jobs_can_be_suspended():
    world = World(MODERN)
    world.step()
    world.run["spec"]["suspend"] = True
    result = world.step()
    job = next(c for c in result.children if c.kind == "Job")
    assert job.patch == {"spec": {"activeDeadlineSeconds": None, "suspend": True,
                                  "ttlSecondsAfterFinished": None}}
    assert world.job()["spec"]["suspend"] is True and result.status["phase"] == "Suspended"
    world.run["spec"]["suspend"] = False
    resumed = world.step()
    assert world.job()["spec"]["suspend"] is False
    assert resumed.status["phase"] == "Admitted"


def test_suspending_on_kubernetes_1_20_deletes_the_job_and_resume_recreates_it():
    world = World(K8S_120)
    world.step()
    world.run["spec"]["suspend"] = True
    result = world.step()
    assert "Job" in result.prune and names(result, "Job") == []
    assert "r-trainer-1" not in world.children["Job"]
    assert any(e.reason == "Suspended" and "cannot suspend" in e.message for e in result.events)
    assert "r-config" in world.children["ConfigMap"]  # the rest stays
    world.run["spec"]["suspend"] = False
    world.step()
    assert "r-trainer-1" in world.children["Job"]


def test_kueue_holds_a_queued_run_until_it_unsuspends_the_job():
    world = World(MODERN, queueName="team-a")
    result = world.step()
    assert world.job()["spec"]["suspend"] is True
    assert world.job()["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert conditions(result)["Admitted"] == ("False", "Queued")
    world.job()["spec"]["suspend"] = False  # Kueue admitted the workload
    result = world.step()
    assert conditions(result)["Admitted"] == ("True", "Resolved")
    assert next(c for c in result.children if c.kind == "Job").patch is None


def test_a_missing_budget_waits_without_a_warning():
    world = World(budgetRef="team-a")
    world.refs = {ObjectRef("arclight.dev/v1alpha1", "CreditBudget", "team-a"): None}
    result = world.step()
    assert conditions(result)["Admitted"] == ("False", "BudgetNotFound")
    assert "Job" not in world.children and not any(e.warning for e in result.events)
    world.refs = {ObjectRef("arclight.dev/v1alpha1", "CreditBudget", "team-a"): {"kind": "x"}}
    assert names(world.step(), "Job") == ["r-trainer-1"]


# --- failures, retries and fixes ---------------------------------------------------------------

def test_out_of_memory_is_retried_with_the_automatic_fix_recorded_on_the_run():
    world = World()
    world.step()
    world.trainer_exited(ExitCode.KILLED, "OOMKilled")
    result = world.step()
    assert result.object_patch is not None
    record = json.loads(world.run["metadata"]["annotations"][build.OVERRIDES_ANNOTATION])
    assert record == {"attempt": 2, "hyperparameters": {"batchSize": 4,
                                                        "gradientAccumulation": 2}}
    assert sorted(names(result, "Job")) == ["r-trainer-1", "r-trainer-2"]  # history kept
    assert config_of(world)["hyperparameters"]["batchSize"] == 4
    assert config_of(world)["run"]["attempt"] == 2
    status = result.status
    assert status["attempts"] == 2 and status["diagnosis"]["reason"] == "OutOfMemory"
    assert status["diagnosis"]["autoFixApplied"] is True
    assert status["resolved"]["hyperparameters"]["batchSize"] == 4
    assert conditions(result)["Degraded"] == ("True", "Retrying")
    retry = next(e for e in result.events if e.reason == "Retrying")
    assert retry.warning and '"batchSize": 4' in retry.message


def test_a_run_that_recovers_keeps_no_stale_diagnosis():
    world = World()
    world.step()
    world.trainer_exited(ExitCode.KILLED, "OOMKilled")
    world.step()
    world.step()
    world.job_finished("Complete", attempt=2)
    result = world.step()
    assert result.status["phase"] == "Succeeded" and "diagnosis" not in result.status
    degraded = next(c for c in result.status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "False"
    assert degraded["message"] == ("Recovered: attempt 1 failed (OutOfMemory), attempt 2 "
                                   "completed.")


def test_a_retry_resumes_from_the_best_checkpoint():
    world = World()
    world.step()
    world.children["ConfigMap"]["r-report"]["data"] = {"bestCheckpoint": json.dumps(
        {"step": 2, "uri": "pvc://a/ns/r/step-2", "metric": "reward", "value": 0.3})}
    world.trainer_exited(ExitCode.KILLED, "OOMKilled")
    world.step()
    assert config_of(world)["resumeFrom"] == "pvc://a/ns/r/step-2"


@pytest.mark.parametrize(("code", "reason"), [(ExitCode.DATASET_INVALID, "DatasetInvalid"),
                                              (ExitCode.REWARD_ERROR, "RewardError"),
                                              (ExitCode.CONFIG_INVALID, "ConfigInvalid")])
def test_failures_a_retry_cannot_fix_fail_the_run(code, reason):
    world = World()
    world.step()
    world.trainer_exited(code)
    result = world.step()
    assert result.status["phase"] == "Failed" and conditions(result)["Failed"] == ("True", reason)
    assert result.status["completionTime"] == "2026-12-01T12:00:00Z"
    assert result.prune == () and names(result, "Job") == ["r-trainer-1"]
    assert any(e.warning and e.reason == reason for e in result.events)


def test_the_last_attempt_fails_the_run_and_auto_remediation_can_be_off():
    world = World(retry={"maxAttempts": 2, "autoRemediate": False})
    world.step()
    world.trainer_exited(ExitCode.DIVERGED, message=json.dumps({"message": "Loss became NaN."}))
    second = world.step()
    assert second.object_patch is None and second.status["diagnosis"]["autoFixApplied"] is False
    world.trainer_exited(ExitCode.DIVERGED, attempt=2)
    result = world.step()
    assert result.status["phase"] == "Failed" and result.status["attempts"] == 2
    assert conditions(result)["Failed"][1] == "Diverged"


def test_a_recovered_run_keeps_no_stale_diagnosis():
    world = World()
    world.step()
    world.pod(phase="Pending", containerStatuses=[{"name": "trainer", "state": {
        "waiting": {"reason": "ImagePullBackOff", "message": "back-off"}}}])
    degraded = world.step()
    assert conditions(degraded)["Degraded"] == ("True", "ImagePullFailed")
    assert degraded.status["diagnosis"]["reason"] == "ImagePullFailed"
    world.pod(phase="Running")
    recovered = world.step()
    assert "diagnosis" not in recovered.status
    assert conditions(recovered)["Degraded"] == ("False", "AsExpected")


# --- spec changes and the end of a run --------------------------------------------------------

def test_an_immutable_change_while_running_is_refused_and_the_attempt_is_untouched():
    world = World()
    world.step()
    config = world.children["ConfigMap"]["r-config"]["data"]["config.json"]
    world.run["spec"]["hyperparameters"]["batchSize"] = 2
    world.run["metadata"]["generation"] = 2
    result = world.step()
    assert conditions(result)["Degraded"] == ("True", "SpecChangeRejected")
    assert "spec.hyperparameters" in next(
        c for c in result.status["conditions"] if c["type"] == "Degraded")["message"]
    assert world.children["ConfigMap"]["r-config"]["data"]["config.json"] == config
    assert result.status["observedGeneration"] == 2


def test_a_deadline_change_while_running_is_patched_into_the_job():
    world = World()
    world.step()
    world.run["spec"]["activeDeadlineSeconds"] = 600
    world.step()
    assert world.job()["spec"]["activeDeadlineSeconds"] == 600


def test_success_deploys_and_a_finished_run_is_left_alone():
    world = World(deploy={"enabled": True, "modelDeployment": "serve"})
    world.step()
    world.job_finished("Complete")
    result = world.step()
    assert result.status["phase"] == "Succeeded"
    assert conditions(result)["Succeeded"] == ("True", "Completed")
    [deployment] = result.applies
    assert deployment.manifest["metadata"] == {"name": "serve", "namespace": "ns"}
    assert deployment.manifest["spec"] == {"source": {"trainingRun": "r"}}
    assert deployment.patch == {"spec": {"source": {"trainingRun": "r", "uri": None,
                                                    "mlflowModel": None}}}
    world.refs = {ObjectRef("arclight.dev/v1alpha1", "ModelDeployment", "serve", "ns"):
                  {"spec": {"source": {"trainingRun": "r"}}}}
    after = world.step()
    assert after.applies == [] and after.children == [] and after.prune == ()
    assert after.events == []


# --- errors -----------------------------------------------------------------------------------

def test_an_invalid_spec_is_a_condition_and_one_warning():
    world = World(algorithm="ppo")  # the CPU backend runs grpo only
    result = world.step()
    assert conditions(result)["Admitted"] == ("False", "InvalidSpec")
    assert conditions(result)["Degraded"] == ("True", "InvalidSpec")
    assert "spec.algorithm" in result.status["conditions"][0]["message"]
    assert sum(e.warning for e in result.events) == 1
    assert world.step().events == []  # said once
    assert "Job" not in world.children


# --- a pass that stopped half-way (kill -9 between the Job and the status) -------------------

def test_a_status_lagging_its_job_is_caught_up():
    world = World()
    first = world.step()
    world.run["status"] = {}  # the operator died after creating the children
    result = world.step()
    assert result.status["attempts"] == 1
    assert [e.reason for e in result.events] == ["AttemptStarted", "Resolved"]
    assert names(result, "Job") == ["r-trainer-1"] and len(first.children) == 7


def test_a_lost_retry_status_is_recovered_from_the_failed_job():
    world = World()
    world.step()
    world.trainer_exited(ExitCode.KILLED, "OOMKilled")
    before_retry = copy.deepcopy(world.run["status"])
    world.step()  # creates attempt 2 and records the fix on the run
    world.run["status"] = before_retry  # ... but its status write was lost
    result = world.step()
    assert result.status["attempts"] == 2
    assert result.status["diagnosis"]["reason"] == "OutOfMemory"
    assert result.status["diagnosis"]["autoFixApplied"] is True
    assert conditions(result)["Degraded"] == ("True", "Retrying")
    assert {e.reason for e in result.events} >= {"AttemptStarted", "Retrying"}
