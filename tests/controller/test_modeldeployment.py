"""The ModelDeployment controller on a real API server + controller-manager (no kubelet).

The kubelet's part (a serving pod turning Ready) is played by patching ``pods/status``;
the Deployment, ReplicaSet, HPA and garbage-collector controllers are the real ones.
"""
from __future__ import annotations

import json

import pytest
from kube import NO_NODE_SELECTOR, find_condition, wait_until
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from test_operator_rbac import operator_as_service_account  # noqa: F401 (a fixture)

pytestmark = pytest.mark.controller
GROUP, VERSION = "arclight.dev", "v1alpha1"
WAIT = 45
OWNER = "arclight.dev/owner-name"


def create(cluster, namespace, plural, name, spec):
    kind = {"modeldeployments": "ModelDeployment", "trainingruns": "TrainingRun"}[plural]
    client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                                            "metadata": {"name": name}, "spec": spec})


def get_md(cluster, namespace, name):
    return client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "modeldeployments", name)


def patch_md(cluster, namespace, name, spec):
    client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, "modeldeployments", name, {"spec": spec})


def condition(cluster, namespace, name, type_, status="True", reason=None, timeout=WAIT):
    def check():
        cond = find_condition(get_md(cluster, namespace, name), type_)
        if cond and cond["status"] == status and (reason is None or cond["reason"] == reason):
            return cond
        return None
    return wait_until(check, timeout, what=f"{name}: {type_}={status} {reason or ''}")


def status_where(cluster, namespace, name, predicate, what):
    def check():
        status = get_md(cluster, namespace, name).get("status") or {}
        return status if predicate(status) else None
    return wait_until(check, WAIT, what=f"{name}: {what}")


def deployments(cluster, namespace, name):
    items = client.AppsV1Api(cluster.api).list_namespaced_deployment(
        namespace, label_selector=f"{OWNER}={name}").items
    return {d.metadata.name: d for d in items}


def hpas(cluster, namespace):
    """HPAs by name, read as ``autoscaling/v2beta2`` (what this 1.20 cluster serves)."""
    api = DynamicClient(cluster.api).resources.get(api_version="autoscaling/v2beta2",
                                                   kind="HorizontalPodAutoscaler")
    return {h["metadata"]["name"]: h for h in api.get(namespace=namespace).to_dict()["items"]}


def model_arg(dep):
    command = dep.spec.template.spec.containers[0].command
    return command[command.index("--model") + 1]


def make_pod_ready(cluster, namespace, revision):
    core = client.CoreV1Api(cluster.api)
    pods = wait_until(lambda: core.list_namespaced_pod(
        namespace, label_selector=f"arclight.dev/revision={revision}").items, WAIT,
        what=f"a pod of revision {revision}")
    now = "2024-01-01T00:00:00Z"
    core.patch_namespaced_pod_status(pods[0].metadata.name, namespace, {"status": {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                       {"type": "ContainersReady", "status": "True", "lastTransitionTime": now}],
        "containerStatuses": [{"name": "server", "image": "docker.io/arclight/trainer:test",
                               "imageID": "", "ready": True, "restartCount": 0,
                               "started": True, "state": {"running": {"startedAt": now}}}]}})


# --- tests ---------------------------------------------------------------------------------

def test_create_builds_deployment_service_hpa_and_status(cluster, namespace, operator):
    create(cluster, namespace, "modeldeployments", "chat", {
        "source": {"uri": "pvc://models/chat/v1"}, "resources": {"cpu": "500m", "memory": "1Gi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 3, "targetCPUPercent": 70}})
    status = status_where(cluster, namespace, "chat", lambda s: s.get("currentRevision"),
                          "a current revision")
    revision = status["currentRevision"]
    assert revision.startswith("chat-")
    assert status["url"] == f"http://chat.{namespace}.svc.cluster.local"
    assert [r["name"] for r in status["revisions"]] == [revision]
    assert status["revisions"][0]["source"] == {"uri": "pvc://models/chat/v1"}
    assert status["traffic"] == [{"revision": revision, "percent": 100}]
    assert status["observedGeneration"] == 1
    md = get_md(cluster, namespace, "chat")
    assert find_condition(md, "Ready")["reason"] == "ReplicasUnavailable"
    assert find_condition(md, "Degraded")["status"] == "False"

    (dep,) = deployments(cluster, namespace, "chat").values()
    assert dep.metadata.name == revision
    assert dep.metadata.owner_references[0].name == "chat"
    assert dep.metadata.owner_references[0].kind == "ModelDeployment"
    assert model_arg(dep) == "/models/chat/v1"
    pod = dep.spec.template.spec
    assert pod.volumes[0].persistent_volume_claim.claim_name == "models"
    assert pod.volumes[0].persistent_volume_claim.read_only is True
    assert pod.containers[0].security_context.read_only_root_filesystem is True
    assert pod.containers[0].readiness_probe.http_get.path == "/healthz"

    svc = client.CoreV1Api(cluster.api).read_namespaced_service("chat", namespace)
    assert (svc.spec.ports[0].port, svc.spec.ports[0].target_port) == (80, "http")
    assert svc.metadata.owner_references[0].name == "chat"

    hpa = wait_until(lambda: hpas(cluster, namespace).get("chat"), WAIT, what="HPA chat")
    assert hpa["spec"]["scaleTargetRef"]["name"] == revision
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert hpa["metadata"]["ownerReferences"][0]["name"] == "chat"

    make_pod_ready(cluster, namespace, revision)
    ready = condition(cluster, namespace, "chat", "Ready", reason="Available")
    assert revision in ready["message"]
    condition(cluster, namespace, "chat", "Progressing", "False", reason="Available")
    assert get_md(cluster, namespace, "chat")["status"]["readyReplicas"] == 1

    client.CustomObjectsApi(cluster.api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "modeldeployments", "chat")

    def gone():
        apps, core = client.AppsV1Api(cluster.api), client.CoreV1Api(cluster.api)
        left = [d.metadata.name for d in apps.list_namespaced_deployment(namespace).items]
        left += [s.metadata.name for s in core.list_namespaced_service(namespace).items]
        left += list(hpas(cluster, namespace))
        return not left or None
    wait_until(gone, 60, what="children garbage-collected after the delete")


def test_training_run_source_waits_for_the_best_checkpoint(cluster, namespace, operator):
    create(cluster, namespace, "trainingruns", "tuned",
           {"template": "math-solver", "suspend": True})
    create(cluster, namespace, "modeldeployments", "agent",
           {"source": {"trainingRun": "tuned"}})
    waiting = condition(cluster, namespace, "agent", "Progressing", "False",
                        reason="SourceNotReady")
    assert "tuned" in waiting["message"] and "best checkpoint" in waiting["message"]
    assert not deployments(cluster, namespace, "agent")

    best = {"step": 4, "uri": "pvc://artifacts/runs/tuned/step-4", "metric": "validationReward",
            "value": 0.6}
    client.CustomObjectsApi(cluster.api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "trainingruns", "tuned", {"status": {"bestCheckpoint": best}})
    status = status_where(cluster, namespace, "agent", lambda s: s.get("currentRevision"),
                          "a revision from the run's best checkpoint")
    assert status["revisions"][0]["source"] == {"uri": best["uri"], "trainingRun": "tuned"}
    dep = deployments(cluster, namespace, "agent")[status["currentRevision"]]
    assert model_arg(dep) == "/models/runs/tuned/step-4"
    assert dep.spec.template.spec.volumes[0].persistent_volume_claim.claim_name == "artifacts"


def test_canary_splits_by_replicas_then_rollback(cluster, namespace, operator):
    create(cluster, namespace, "modeldeployments", "bot", {
        "source": {"uri": "pvc://models/bot/v1"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 3}})
    stable = status_where(cluster, namespace, "bot", lambda s: s.get("currentRevision"),
                          "the stable revision")["currentRevision"]
    patch_md(cluster, namespace, "bot", {"canary": {"source": {"uri": "pvc://models/bot/v2"},
                                                    "weight": 10}})
    status = status_where(cluster, namespace, "bot", lambda s: s.get("canaryRevision"),
                          "a canary revision")
    canary = status["canaryRevision"]
    assert status["currentRevision"] == stable and canary != stable
    # 10% with at most 3 replicas: 2 stable + 1 canary is the closest ratio.
    assert status["traffic"] == [{"revision": stable, "percent": 67},
                                 {"revision": canary, "percent": 33}]
    deps = deployments(cluster, namespace, "bot")
    assert {n: d.spec.replicas for n, d in deps.items()} == {stable: 2, canary: 1}
    assert model_arg(deps[canary]) == "/models/bot/v2"
    svc = client.CoreV1Api(cluster.api).read_namespaced_service("bot", namespace)
    assert "arclight.dev/revision" not in svc.spec.selector  # both revisions behind it
    assert "bot" not in hpas(cluster, namespace)  # replica counts are fixed during the split

    # Promote: the canary's source becomes the source; the old revision is retired.
    patch_md(cluster, namespace, "bot", {"source": {"uri": "pvc://models/bot/v2"},
                                         "canary": None})
    status_where(cluster, namespace, "bot", lambda s: s.get("currentRevision") == canary
                 and not s.get("canaryRevision"), "the canary promoted")
    wait_until(lambda: set(deployments(cluster, namespace, "bot")) == {canary}, WAIT,
               what="only the promoted revision's Deployment left")

    patch_md(cluster, namespace, "bot", {"rollbackTo": stable})
    rolled = condition(cluster, namespace, "bot", "RolledBack", reason="ManualRollback")
    assert stable in rolled["message"]
    status = get_md(cluster, namespace, "bot")["status"]
    assert status["currentRevision"] == stable
    assert [r["name"] for r in status["revisions"]] == [stable, canary]
    wait_until(lambda: set(deployments(cluster, namespace, "bot")) == {stable}, WAIT,
               what="the rolled-back revision's Deployment alone")
    assert model_arg(deployments(cluster, namespace, "bot")[stable]) == "/models/bot/v1"

    patch_md(cluster, namespace, "bot", {"rollbackTo": "bot-00000000"})
    degraded = condition(cluster, namespace, "bot", "Degraded", reason="UnknownRevision")
    assert "bot-00000000" in degraded["message"]


def test_scale_to_zero_without_keda_is_reported(cluster, namespace, operator):
    create(cluster, namespace, "modeldeployments", "lazy", {
        "source": {"mlflowModel": "models:/lazy@prod"},
        "autoscaling": {"minReplicas": 0, "maxReplicas": 2, "targetConcurrency": 2}})
    degraded = condition(cluster, namespace, "lazy", "Degraded", reason="KedaRequired")
    assert "KEDA" in degraded["message"]
    revision = get_md(cluster, namespace, "lazy")["status"]["currentRevision"]
    dep = deployments(cluster, namespace, "lazy")[revision]
    assert model_arg(dep) == "models:/lazy@prod" and dep.spec.replicas == 1
    assert hpas(cluster, namespace)["lazy"]["spec"]["minReplicas"] == 1


def test_succeeded_run_with_deploy_creates_the_model_deployment(cluster, namespace, operator):
    create(cluster, namespace, "trainingruns", "ship", {
        "template": "math-solver", "hyperparameters": {"maxSteps": 4},
        "resources": {"nodeSelector": NO_NODE_SELECTOR},
        "deploy": {"enabled": True, "modelDeployment": "shipped"}})
    core = client.CoreV1Api(cluster.api)
    wait_until(lambda: core.read_namespaced_config_map("ship-report", namespace), WAIT,
               what="the run's report ConfigMap")
    best = {"step": 4, "uri": "pvc://artifacts/ship/step-4", "metric": "validationReward",
            "value": 0.7}
    core.patch_namespaced_config_map("ship-report", namespace,
                                     {"data": {"bestCheckpoint": json.dumps(best)}})
    pods = wait_until(lambda: core.list_namespaced_pod(
        namespace, label_selector="job-name=ship-trainer-1").items, WAIT, what="trainer pod")
    core.patch_namespaced_pod_status(pods[0].metadata.name, namespace, {"status": {
        "phase": "Succeeded", "containerStatuses": [{
            "name": "trainer", "image": "docker.io/arclight/trainer:test", "imageID": "",
            "ready": False, "restartCount": 0, "state": {"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": "2024-01-01T00:00:00Z",
                "finishedAt": "2024-01-01T00:01:00Z"}}}]}})
    md = wait_until(lambda: get_md(cluster, namespace, "shipped"), 60,
                    what="ModelDeployment shipped created by the succeeded run")
    assert md["spec"]["source"] == {"trainingRun": "ship"}
    status = status_where(cluster, namespace, "shipped", lambda s: s.get("currentRevision"),
                          "a revision serving the run's best checkpoint")

    assert status["revisions"][0]["source"]["uri"] == best["uri"]


def test_operator_serves_with_only_the_charts_cluster_role(
        cluster, namespace, operator_as_service_account):  # noqa: F811 (the fixture)
    create(cluster, namespace, "modeldeployments", "least", {
        "source": {"uri": "pvc://models/least/v1"}})
    status = status_where(cluster, namespace, "least", lambda s: s.get("currentRevision"),
                          "a revision applied by the least-privileged operator")
    assert set(deployments(cluster, namespace, "least")) == {status["currentRevision"]}
    assert "least" in wait_until(lambda: hpas(cluster, namespace), WAIT, what="HPA least")
    # RBAC denials name the user (other 403s, e.g. terminating namespaces, do not).
    assert 'User "system:serviceaccount' not in operator_as_service_account.log_tail(400)
