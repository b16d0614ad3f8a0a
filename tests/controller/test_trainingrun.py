"""The TrainingRun controller on a real API server + controller-manager (no kubelet).

The kubelet's part is played by patching ``pods/status`` the way it would; the job
controller, garbage collector and RBAC are the real ones.
"""
from __future__ import annotations

import base64
import json
import secrets

import pytest
from kube import NO_NODE_SELECTOR, find_condition, wait_until
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.controller
GROUP, VERSION, PLURAL = "arclight.dev", "v1alpha1", "trainingruns"
WAIT = 45


# --- helpers -------------------------------------------------------------------------------

def make_run(cluster, namespace, name=None, **spec):
    name = name or f"run-{secrets.token_hex(3)}"
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun",
            "metadata": {"name": name},
            "spec": {"template": "math-solver", "hyperparameters": {"maxSteps": 4,
                                                                   "batchSize": 8},
                     "resources": {"nodeSelector": NO_NODE_SELECTOR}, **spec}}
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body)
    return name


def get_run(cluster, namespace, name):
    return client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name)


def patch_spec(cluster, namespace, name, spec):
    client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name, {"spec": spec})


def condition(cluster, namespace, name, type_, status="True", reason=None, timeout=WAIT):
    def check():
        cond = find_condition(get_run(cluster, namespace, name), type_)
        if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
            return cond
        return None
    want = f"{name}: {type_}={status}" + (f" ({reason})" if reason else "")
    return wait_until(check, timeout, what=want)


def jobs(cluster, namespace, name):
    return client.BatchV1Api(cluster.api).list_namespaced_job(
        namespace, label_selector=f"arclight.dev/owner-name={name}").items


def job_pod(cluster, namespace, job_name):
    def pods():
        return client.CoreV1Api(cluster.api).list_namespaced_pod(
            namespace, label_selector=f"job-name={job_name}").items
    return wait_until(pods, WAIT, what=f"a pod of Job {job_name}")[0]


def set_pod_status(cluster, namespace, pod, phase, state, reason=None):
    """Write pod status as the kubelet would."""
    status = {"phase": phase, "containerStatuses": [{
        "name": "trainer", "image": "docker.io/arclight/trainer:test", "imageID": "",
        "ready": phase == "Running", "restartCount": 0, "state": state}]}
    if reason:
        status["reason"] = reason
    client.CoreV1Api(cluster.api).patch_namespaced_pod_status(
        pod.metadata.name, namespace, {"status": status})


def terminate(cluster, namespace, job_name, exit_code, reason="Error", message=""):
    pod = job_pod(cluster, namespace, job_name)
    set_pod_status(cluster, namespace, pod, "Failed", {"terminated": {
        "exitCode": exit_code, "reason": reason, "message": message,
        "startedAt": "2024-01-01T00:00:00Z", "finishedAt": "2024-01-01T00:01:00Z"}})


def events(cluster, namespace, name):
    items = client.CoreV1Api(cluster.api).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}").items
    return [(e.type, e.reason, e.message) for e in items]


def config_json(cluster, namespace, name):
    cm = client.CoreV1Api(cluster.api).read_namespaced_config_map(f"{name}-config", namespace)
    return json.loads(cm.data["config.json"])


# --- tests ---------------------------------------------------------------------------------

def test_create_builds_owned_children_and_status(cluster, namespace, operator):
    name = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    run = get_run(cluster, namespace, name)
    status = run["status"]
    assert status["phase"] == "Admitted" and status["attempts"] == 1
    assert status["observedGeneration"] == run["metadata"]["generation"]
    assert status["resolved"]["template"] == "math-solver"
    assert status["resolved"]["hyperparameters"]["maxSteps"] == 4
    assert find_condition(run, "Running")["reason"] == "Starting"
    core, rbac = client.CoreV1Api(cluster.api), client.RbacAuthorizationV1Api(cluster.api)
    children = [core.read_namespaced_config_map(f"{name}-config", namespace),
                core.read_namespaced_config_map(f"{name}-report", namespace),
                core.read_namespaced_service_account(f"{name}-trainer", namespace),
                rbac.read_namespaced_role(f"{name}-trainer", namespace),
                rbac.read_namespaced_role_binding(f"{name}-trainer", namespace),
                core.read_namespaced_service(f"{name}-gateway", namespace),
                client.BatchV1Api(cluster.api).read_namespaced_job(f"{name}-trainer-1",
                                                                   namespace)]
    for child in children:
        (ref,) = child.metadata.owner_references
        assert (ref.kind, ref.name, ref.uid) == ("TrainingRun", name, run["metadata"]["uid"])
        assert child.metadata.labels["arclight.dev/owner-name"] == name
    config = config_json(cluster, namespace, name)
    assert config["run"] == {"name": name, "namespace": namespace,
                             "uid": run["metadata"]["uid"], "attempt": 1}
    assert ("Normal", "AttemptStarted") in {(t, r) for t, r, _ in events(cluster, namespace,
                                                                         name)}
    # The kubelet starts the pod: the run is Running.
    set_pod_status(cluster, namespace, job_pod(cluster, namespace, f"{name}-trainer-1"),
                   "Running", {"running": {"startedAt": "2024-01-01T00:00:00Z"}})
    condition(cluster, namespace, name, "Running", "True", "Training")
    assert get_run(cluster, namespace, name)["status"]["phase"] == "Running"
    assert 'arclight_reconcile_total{kind="TrainingRun"' in operator.metrics()


def test_report_written_with_the_runs_own_credentials(cluster, namespace, operator):
    name = make_run(cluster, namespace)
    other = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    condition(cluster, namespace, other, "Admitted", "True")
    core = client.CoreV1Api(cluster.api)

    def token():
        sa = core.read_namespaced_service_account(f"{name}-trainer", namespace)
        if not sa.secrets:
            return None
        secret = core.read_namespaced_secret(sa.secrets[0].name, namespace)
        return base64.b64decode(secret.data["token"]).decode() if secret.data else None

    trainer_cfg = client.Configuration()
    admin = cluster.api.configuration
    trainer_cfg.host, trainer_cfg.ssl_ca_cert = admin.host, admin.ssl_ca_cert
    trainer_cfg.verify_ssl = admin.verify_ssl
    trainer_cfg.api_key = {"authorization": wait_until(token, WAIT, what="SA token")}
    trainer_cfg.api_key_prefix = {"authorization": "Bearer"}
    trainer = client.CoreV1Api(client.ApiClient(trainer_cfg))
    report = {"progress": json.dumps({"step": 2, "totalSteps": 4, "epoch": 0,
                                      "etaSeconds": 30}),
              "metrics": json.dumps({"reward": {"mean": 0.5, "min": 0.0, "max": 1.0,
                                                "std": 0.25}, "loss": 1.25}),
              "bestCheckpoint": json.dumps({"step": 2, "uri": "pvc://artifacts/x/step-2",
                                            "metric": "validationReward", "value": 0.5})}
    trainer.patch_namespaced_config_map(f"{name}-report", namespace, {"data": report})
    with pytest.raises(ApiException) as denied:
        trainer.patch_namespaced_config_map(f"{other}-report", namespace,
                                            {"data": {"progress": "{}"}})
    assert denied.value.status == 403
    with pytest.raises(ApiException) as denied:
        trainer.read_namespaced_config_map(f"{name}-config", namespace)
    assert denied.value.status == 403

    def reported():
        status = get_run(cluster, namespace, name).get("status", {})
        return status if status.get("progress", {}).get("step") == 2 else None
    status = wait_until(reported, WAIT, what="progress in status")
    assert status["progress"]["percent"] == 50 and status["progress"]["totalSteps"] == 4
    assert status["metrics"]["reward"]["mean"] == 0.5 and status["metrics"]["loss"] == 1.25
    assert status["bestCheckpoint"]["uri"] == "pvc://artifacts/x/step-2"


def test_oom_is_fixed_and_retried_then_divergence_fails(cluster, namespace, operator):
    name = make_run(cluster, namespace, retry={"maxAttempts": 2, "autoRemediate": True})
    condition(cluster, namespace, name, "Admitted", "True")
    first = config_json(cluster, namespace, name)["hyperparameters"]
    assert first["batchSize"] == 8
    terminate(cluster, namespace, f"{name}-trainer-1", 137, "OOMKilled")
    wait_until(lambda: len(jobs(cluster, namespace, name)) == 2, WAIT, what="attempt 2 Job")
    status = wait_until(lambda: (s := get_run(cluster, namespace, name)["status"])
                        .get("attempts") == 2 and s, WAIT, what="attempts=2")
    assert status["diagnosis"]["reason"] == "OutOfMemory"
    assert status["diagnosis"]["autoFixApplied"] is True
    assert status["resolved"]["hyperparameters"]["batchSize"] == 4
    config = config_json(cluster, namespace, name)
    assert config["run"]["attempt"] == 2
    assert config["hyperparameters"]["batchSize"] == 4
    assert config["hyperparameters"]["gradientAccumulation"] == 2 * first["gradientAccumulation"]
    assert any(r == "Retrying" and t == "Warning" for t, r, _ in events(cluster, namespace, name))
    report = {"reason": "Diverged", "message": "Loss became NaN at step 3.",
              "suggestions": ["Lower spec.hyperparameters.learningRate."]}
    terminate(cluster, namespace, f"{name}-trainer-2", 3, message=json.dumps(report))
    failed = condition(cluster, namespace, name, "Failed", "True", "Diverged")
    assert "Loss became NaN" in failed["message"]
    status = get_run(cluster, namespace, name)["status"]
    assert status["phase"] == "Failed" and status["completionTime"]
    assert status["diagnosis"]["suggestions"] == report["suggestions"]
    assert len(jobs(cluster, namespace, name)) == 2  # maxAttempts respected


@pytest.mark.parametrize(("exit_code", "reason"), [(2, "DatasetInvalid"), (4, "RewardError")])
def test_non_retryable_failures(cluster, namespace, operator, exit_code, reason):
    name = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    terminate(cluster, namespace, f"{name}-trainer-1", exit_code)
    cond = condition(cluster, namespace, name, "Failed", "True", reason)
    assert cond["message"]
    assert len(jobs(cluster, namespace, name)) == 1
    assert any(r == reason and t == "Warning" for t, r, _ in events(cluster, namespace, name))
    # Finished: no finalizer left, so deleting it (or its namespace) never needs the operator.
    wait_until(lambda: not get_run(cluster, namespace, name)["metadata"].get("finalizers"), WAIT,
               what="the finalizer to go")


def test_deadline_exceeded(cluster, namespace, operator):
    name = make_run(cluster, namespace, activeDeadlineSeconds=2)
    cond = condition(cluster, namespace, name, "Failed", "True", "DeadlineExceeded")
    assert "activeDeadlineSeconds" in cond["message"]


@pytest.mark.parametrize(("waiting", "reason", "says"), [
    ("ImagePullBackOff", "ImagePullFailed", "image"),
    ("CrashLoopBackOff", "CrashLoop", "crashing"),
])
def test_waiting_trainer_degrades_the_run(cluster, namespace, operator, waiting, reason, says):
    name = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    pod = job_pod(cluster, namespace, f"{name}-trainer-1")
    set_pod_status(cluster, namespace, pod, "Pending", {"waiting": {
        "reason": waiting, "message": "Back-off"}})
    cond = condition(cluster, namespace, name, "Degraded", "True", reason)
    assert says in cond["message"]
    assert get_run(cluster, namespace, name)["status"]["diagnosis"]["reason"] == reason


def test_eviction_is_retried(cluster, namespace, operator):
    name = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    pod = job_pod(cluster, namespace, f"{name}-trainer-1")
    set_pod_status(cluster, namespace, pod, "Failed", {"terminated": {
        "exitCode": 137, "reason": "Error", "startedAt": "2024-01-01T00:00:00Z",
        "finishedAt": "2024-01-01T00:01:00Z"}}, reason="Evicted")
    wait_until(lambda: len(jobs(cluster, namespace, name)) == 2, WAIT, what="attempt 2")
    status = wait_until(
        lambda: (s := get_run(cluster, namespace, name)["status"]).get("attempts") == 2 and s,
        WAIT, what="attempt 2 in status")
    assert status["diagnosis"]["reason"] == "Evicted"


def test_failed_rollouts_are_retried_then_fail(cluster, namespace, operator):
    name = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    terminate(cluster, namespace, f"{name}-trainer-1", 7)
    wait_until(lambda: len(jobs(cluster, namespace, name)) == 2, WAIT, what="attempt 2")
    terminate(cluster, namespace, f"{name}-trainer-2", 7)
    cond = condition(cluster, namespace, name, "Failed", "True", "RolloutsFailed")
    assert "rollout" in cond["message"]


def test_suspend_and_resume(cluster, namespace, operator):
    name = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    patch_spec(cluster, namespace, name, {"suspend": True})
    condition(cluster, namespace, name, "Running", "False", "Suspended")
    run = get_run(cluster, namespace, name)
    assert run["status"]["phase"] == "Suspended"
    live = [j for j in jobs(cluster, namespace, name) if not j.spec.suspend]
    assert live == []  # suspended, or deleted where Jobs cannot be suspended
    patch_spec(cluster, namespace, name, {"suspend": False})
    condition(cluster, namespace, name, "Running", "False", "Starting")
    wait_until(lambda: [j for j in jobs(cluster, namespace, name) if not j.spec.suspend],
               WAIT, what="an unsuspended Job")
    assert get_run(cluster, namespace, name)["status"]["attempts"] == 1


def test_spec_change_while_running_is_rejected(cluster, namespace, operator):
    name = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    patch_spec(cluster, namespace, name, {"hyperparameters": {"maxSteps": 99},
                                          "activeDeadlineSeconds": 600})
    cond = condition(cluster, namespace, name, "Degraded", "True", "SpecChangeRejected")
    assert "spec.hyperparameters" in cond["message"]
    run = get_run(cluster, namespace, name)
    assert run["status"]["resolved"]["hyperparameters"]["maxSteps"] == 4
    assert config_json(cluster, namespace, name)["hyperparameters"]["maxSteps"] == 4
    job = client.BatchV1Api(cluster.api).read_namespaced_job(f"{name}-trainer-1", namespace)
    assert job.spec.active_deadline_seconds == 600  # an allowed change is applied


def test_invalid_specs_get_a_condition_and_an_event(cluster, namespace, operator):
    long_name = make_run(cluster, namespace, name="x" * 50)
    cond = condition(cluster, namespace, long_name, "Admitted", "False", "InvalidSpec")
    assert "metadata.name" in cond["message"]
    assert jobs(cluster, namespace, long_name) == []
    wait_until(lambda: [e for e in events(cluster, namespace, long_name)
                        if e[0] == "Warning" and e[1] == "InvalidSpec"], WAIT,
               what="one InvalidSpec Warning")


def test_a_missing_budget_waits_and_heals_when_it_appears(cluster, namespace, operator):
    budget = f"b-{secrets.token_hex(3)}"
    name = make_run(cluster, namespace, budgetRef=budget)
    cond = condition(cluster, namespace, name, "Admitted", "False", "BudgetNotFound")
    assert "spec.budgetRef" in cond["message"] and budget in cond["message"]
    assert jobs(cluster, namespace, name) == []
    assert not [e for e in events(cluster, namespace, name) if e[0] == "Warning"]
    custom = client.CustomObjectsApi(cluster.api)
    custom.create_cluster_custom_object(GROUP, VERSION, "creditbudgets", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CreditBudget",
        "metadata": {"name": budget}, "spec": {"namespaceSelector": {}, "credits": 100}})
    try:
        condition(cluster, namespace, name, "Admitted", "True")
        wait_until(lambda: jobs(cluster, namespace, name), WAIT, what="the trainer Job")
    finally:
        custom.delete_cluster_custom_object(GROUP, VERSION, "creditbudgets", budget)


def test_delete_removes_children(cluster, namespace, operator):
    name = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    client.CustomObjectsApi(cluster.api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, name)
    core = client.CoreV1Api(cluster.api)
    wait_until(lambda: not jobs(cluster, namespace, name) and not core.list_namespaced_config_map(
        namespace, label_selector=f"arclight.dev/owner-name={name}").items, 60,
        what="children garbage-collected")


def test_operator_restart_keeps_state(cluster, namespace, operator):
    name = make_run(cluster, namespace)
    condition(cluster, namespace, name, "Admitted", "True")
    before = get_run(cluster, namespace, name)["status"]
    operator.restart()
    # Let the restarted operator resync the run (timer every 3 s) and see the same world.
    wait_until(lambda: 'trigger="resync"' in operator.metrics(), WAIT, what="a resync")
    after = get_run(cluster, namespace, name)["status"]
    assert [j.metadata.name for j in jobs(cluster, namespace, name)] == [f"{name}-trainer-1"]
    assert after["attempts"] == 1 and after["phase"] == before["phase"]
    assert {c["type"]: c["lastTransitionTime"] for c in after["conditions"]} == \
        {c["type"]: c["lastTransitionTime"] for c in before["conditions"]}
