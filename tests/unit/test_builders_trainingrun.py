"""TrainingRun children: names, owner references, labels, Job shape, RBAC scope."""
import copy
import json

import pytest
from arclight.api.trainer import TrainerConfig
from arclight.api.trainingrun import ResolvedResources, TrainingRunSpec
from arclight.core.names import Owner
from arclight.training import builders as b

pytestmark = pytest.mark.unit

RUN = {"apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun",
       "metadata": {"name": "demo", "namespace": "team-a", "uid": "uid-1"},
       "spec": {"template": "math-solver", "resources": {"gpu": {"type": "none"}, "nodes": 1},
                "retry": {"maxAttempts": 2}, "suspend": False,
                "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": 3600}}
CONFIG_DOC = {"apiVersion": "arclight.dev/v1alpha1", "kind": "TrainerConfig",
              "run": {"name": "demo", "namespace": "team-a", "uid": "uid-1", "attempt": 2},
              "template": "math-solver",
              "dataset": {"uri": "sample://math-solver", "credentialsDir": None},
              "hyperparameters": {"batchSize": 4},
              "resources": {"gpu": {"type": "none", "count": 0}, "nodes": 1},
              "checkpoint": {"dir": "/artifacts/team-a/demo"}}
CONFIG = TrainerConfig.model_validate(CONFIG_DOC)
RESOURCES = {"gpu": {"type": "none", "count": 0}, "cpu": "2", "memory": "6Gi", "nodes": 1}


def typed(run, resources=RESOURCES):
    """The builders' typed inputs from a run document: owner, spec, resolved resources."""
    return (Owner.of(run), TrainingRunSpec.model_validate(run["spec"]),
            ResolvedResources.model_validate(resources))


def children(run=RUN, config=CONFIG, **kw):
    owner, spec, resources = typed(run)
    return b.build_children(owner, spec, config, image="docker.io/arclight/trainer:dev",
                            artifacts_claim=kw.pop("claim", None), resources=resources, **kw)


def job_of(run, config, resources=RESOURCES, **kw):
    owner, spec, typed_resources = typed(run, resources)
    return b.build_job(owner, spec, config, resources=typed_resources, **kw)


def by_kind(objs):
    return {(o["kind"], o["metadata"]["name"]): o for o in objs}


def test_children_names_owners_and_labels():
    objs = children()
    assert set(by_kind(objs)) == {
        ("ConfigMap", "demo-config"), ("ConfigMap", "demo-report"),
        ("ServiceAccount", "demo-trainer"), ("Role", "demo-trainer"),
        ("RoleBinding", "demo-trainer"), ("Service", "demo-gateway"), ("Job", "demo-trainer-2")}
    assert objs[-1]["kind"] == "Job"
    for obj in objs:
        meta = obj["metadata"]
        assert meta["namespace"] == "team-a"
        assert meta["labels"]["arclight.dev/owner-kind"] == "TrainingRun"
        assert meta["labels"]["arclight.dev/owner-name"] == "demo"
        assert meta["ownerReferences"] == [{
            "apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun", "name": "demo",
            "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]


def test_config_map_holds_the_trainer_config():
    cm = by_kind(children())[("ConfigMap", "demo-config")]
    document = json.loads(cm["data"]["config.json"])
    assert document == CONFIG.model_dump(by_alias=True, mode="json")
    # camelCase keys, every field written (None included), as docs/architecture.md shows it
    assert document["run"] == CONFIG_DOC["run"] and document["resumeFrom"] is None
    assert document["hyperparameters"]["batchSize"] == 4
    assert document["checkpoint"]["dir"] == "/artifacts/team-a/demo"
    assert TrainerConfig.model_validate(document) == CONFIG


def test_role_only_allows_the_runs_own_report():
    role = by_kind(children())[("Role", "demo-trainer")]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"],
                              "resourceNames": ["demo-report"],
                              "verbs": ["get", "patch", "update"]}]
    binding = by_kind(children())[("RoleBinding", "demo-trainer")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-trainer",
                                    "namespace": "team-a"}]


def test_job_shape():
    job = by_kind(children(overrides={"batchSize": 2}))[("Job", "demo-trainer-2")]
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["suspend"] is False
    assert spec["activeDeadlineSeconds"] == 600 and spec["ttlSecondsAfterFinished"] == 3600
    assert "completionMode" not in spec
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["serviceAccountName"] == "demo-trainer"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["name"] == "trainer"
    assert container["image"] == "docker.io/arclight/trainer:dev"
    assert container["command"] == ["python", "-m", "arclight_trainer", "run", "--config",
                                    "/etc/arclight/config.json"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "6Gi"},
                                      "limits": {"memory": "6Gi"}}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["config"] == "/etc/arclight" and mounts["artifacts"] == "/artifacts"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "demo-config"
    assert volumes["artifacts"] == {"name": "artifacts", "emptyDir": {}}
    env = {e["name"] for e in container["env"]}
    assert "ARCLIGHT_CHECKPOINT_URI_PREFIX" not in env  # emptyDir: checkpoints stay file:// URIs
    assert spec["template"]["metadata"]["labels"]["arclight.dev/attempt"] == "2"
    annotations = job["metadata"]["annotations"]
    assert json.loads(annotations[b.OVERRIDES_ANNOTATION]) == {"batchSize": 2}
    applied = json.loads(annotations[b.APPLIED_SPEC_ANNOTATION])
    assert "suspend" not in applied and applied["template"] == "math-solver"


def test_gpu_queue_scheduling_and_claim():
    run = copy.deepcopy(RUN)
    run["spec"].update(queueName="team-a-queue", resources={
        "gpu": {"type": "a100"}, "nodes": 1, "nodeSelector": {"pool": "gpu"},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]},
        checkpoint={"uri": "pvc://ckpt/runs"})
    resources = {**RESOURCES, "gpu": {"type": "a100", "count": 1}}
    job = job_of(run, CONFIG, resources, image="img", artifacts_claim="default-claim")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-queue"
    assert job["spec"]["suspend"] is True
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["artifacts"]["persistentVolumeClaim"] == {"claimName": "ckpt"}
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["ARCLIGHT_CHECKPOINT_URI_PREFIX"] == "pvc://ckpt/team-a/demo"


def test_multi_node_is_an_indexed_job_with_headless_service():
    config = TrainerConfig.model_validate(
        {**CONFIG_DOC, "resources": {"gpu": {"type": "a100", "count": 2}, "nodes": 3}})
    objs = by_kind(children(config=config))
    job = objs[("Job", "demo-trainer-2")]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 3
    assert job["spec"]["template"]["spec"]["subdomain"] == "demo-workers"
    workers = objs[("Service", "demo-workers")]
    assert workers["spec"]["clusterIP"] == "None"
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ARCLIGHT_MASTER_ADDR"]["value"] == "demo-trainer-2-0.demo-workers"


def test_custom_agent_image_and_dataset_secret():
    run = copy.deepcopy(RUN)
    run["spec"].update(template=None, agent={"image": "registry.example/agent:1",
                                             "entrypoint": "agent:run"},
                       dataset={"uri": "s3://b/k.jsonl", "secretRef": {"name": "s3-creds"}})
    config = TrainerConfig.model_validate(
        {**CONFIG_DOC, "dataset": {"uri": "s3://b/k.jsonl",
                                   "credentialsDir": "/var/run/arclight/dataset"}})
    job = job_of(run, config, image="img", artifacts_claim=None)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example/agent:1"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dataset-credentials"]["secret"] == {"secretName": "s3-creds"}


def test_gateway_service_selects_trainer_pods():
    svc = by_kind(children())[("Service", "demo-gateway")]
    assert svc["spec"]["selector"] == {"arclight.dev/owner-kind": "TrainingRun",
                                       "arclight.dev/owner-name": "demo",
                                       "app.kubernetes.io/component": "trainer"}
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"gateway": 8080,
                                                                    "metrics": 9090}


def test_changed_fields_ignore_mutable_ones():
    applied = b.immutable_spec(RUN["spec"])
    spec = {**RUN["spec"], "suspend": True, "activeDeadlineSeconds": 5}
    assert b.changed_fields(applied, spec) == []
    spec["hyperparameters"] = {"learningRate": "1e-3"}
    assert b.changed_fields(applied, spec) == ["hyperparameters"]
