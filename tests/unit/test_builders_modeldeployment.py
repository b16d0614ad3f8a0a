"""ModelDeployment children: revision names, Deployment shape, Service, autoscaling choice,
replica-ratio canary split, Gateway API route, and API discovery decisions."""
import pytest
from arclight.api.modeldeployment import Autoscaling, ModelDeploymentSpec, ServingResources
from arclight.core import facts as discovery
from arclight.core.errors import InvalidSpec
from arclight.serving import builders as b
from arclight.serving import rollout

pytestmark = pytest.mark.unit

SPEC = {"source": {"trainingRun": "demo"}, "runtime": "auto",
        "resources": {"gpu": {"type": "none", "count": 0}, "cpu": "2", "memory": "3Gi"},
        "autoscaling": {"minReplicas": 1, "maxReplicas": 3, "scaleDownDelaySeconds": 300}}
MD = {"apiVersion": "arclight.dev/v1alpha1", "kind": "ModelDeployment",
      "metadata": {"name": "chat", "namespace": "team-a", "uid": "uid-9"}, "spec": SPEC}
PVC = {"uri": "pvc://artifacts/team-a/demo/step-8", "trainingRun": "demo"}
PVC_SOURCE = {"uri": PVC["uri"]}
IMAGE = "docker.io/arclight/trainer:dev"
RESOURCES = ServingResources.model_validate(SPEC["resources"])


def scaling(**fields):
    return Autoscaling.model_validate(fields)


def deployment(source=PVC, replicas=2, **kw):
    return b.build_deployment(MD, "chat-0123abcd", source, image=IMAGE,
                              runtime="transformers", replicas=replicas,
                              spec=ModelDeploymentSpec.model_validate(SPEC), **kw)


def test_revision_name_is_deterministic_and_follows_model_runtime_and_resources():
    name = b.revision_name("chat", PVC, "transformers", RESOURCES)
    assert name.startswith("chat-") and len(name) == len("chat-") + 8
    # The name the operator gave this revision before the typed spec: existing Deployments
    # keep their names across operator upgrades.
    assert name == "chat-4a6c6857"
    assert name == b.revision_name("chat", {"uri": PVC["uri"]}, "transformers",
                                   ServingResources.model_validate(
                                       dict(reversed(SPEC["resources"].items()))))
    other = {**PVC, "uri": "pvc://artifacts/team-a/demo/step-12"}
    assert b.revision_name("chat", other, "transformers", RESOURCES) != name
    assert b.revision_name("chat", PVC, "transformers", ServingResources.model_validate(
        {**SPEC["resources"], "cpu": "4"})) != name
    assert b.revision_name("chat", {"mlflowModel": "models:/m@prod"}, "transformers",
                           RESOURCES) != name


def test_deployment_runs_the_server_on_the_read_only_model_volume():
    dep = deployment()
    meta = dep["metadata"]
    assert meta["name"] == "chat-0123abcd" and meta["namespace"] == "team-a"
    assert meta["labels"]["arclight.dev/owner-kind"] == "ModelDeployment"
    assert meta["labels"]["arclight.dev/revision"] == "chat-0123abcd"
    assert meta["ownerReferences"][0]["uid"] == "uid-9"
    assert dep["spec"]["replicas"] == 2
    pod = dep["spec"]["template"]["spec"]
    assert dep["spec"]["selector"]["matchLabels"].items() <= \
        dep["spec"]["template"]["metadata"]["labels"].items()
    (container,) = pod["containers"]
    assert container["image"] == IMAGE
    assert container["command"][:3] == ["python3", "-m", "arclight_trainer.serve"]
    args = container["command"]
    assert args[args.index("--model") + 1] == "/models/team-a/demo/step-8"
    assert args[args.index("--port") + 1] == "8080"
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"] == {"requests": {"cpu": "2", "memory": "3Gi"},
                                      "limits": {"memory": "3Gi"}}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["model"]["persistentVolumeClaim"] == {"claimName": "artifacts",
                                                         "readOnly": True}
    assert {"name": "model", "mountPath": "/models", "readOnly": True} in \
        container["volumeMounts"]


def test_autoscaled_deployment_leaves_replicas_to_the_autoscaler():
    assert "replicas" not in deployment(replicas=None)["spec"]


def test_deployment_spec_defaults_to_the_objects_spec():
    assert b.build_deployment(MD, "chat-0123abcd", PVC, image=IMAGE, runtime="transformers",
                              replicas=2) == deployment()


def test_mlflow_source_is_passed_to_the_server_with_the_tracking_uri():
    dep = deployment({"mlflowModel": "models:/chat@prod"}, mlflow_uri="http://mlflow:5000")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    args = container["command"]
    assert args[args.index("--model") + 1] == "models:/chat@prod"
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow:5000"} in container["env"]
    assert all("persistentVolumeClaim" not in v
               for v in dep["spec"]["template"]["spec"]["volumes"])


def test_gpu_request_becomes_a_limit():
    md = {**MD, "spec": {**SPEC, "resources": {"gpu": {"type": "l4", "count": 1}}}}
    dep = b.build_deployment(md, "chat-x", PVC, image=IMAGE, runtime="transformers",
                             replicas=1)
    limits = dep["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"


def test_service_selects_every_live_revision_on_port_80():
    svc = b.build_service(MD)
    assert svc["metadata"]["name"] == "chat"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http",
                                     "protocol": "TCP"}]
    assert "arclight.dev/revision" not in svc["spec"]["selector"]
    assert svc["spec"]["selector"].items() <= \
        deployment()["spec"]["template"]["metadata"]["labels"].items()
    assert b.service_url(MD) == "http://chat.team-a.svc.cluster.local"


@pytest.mark.parametrize("version", ["autoscaling/v2", "autoscaling/v2beta2"])
def test_hpa_targets_the_revision_on_cpu(version):
    hpa = b.build_hpa(MD, version, "chat-0123abcd", 1, 3, 70, 7200)
    assert hpa["apiVersion"] == version and hpa["metadata"]["name"] == "chat"
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "chat-0123abcd"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 3)
    assert spec["metrics"][0]["resource"]["target"] == {"type": "Utilization",
                                                        "averageUtilization": 70}
    assert spec["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 3600


def test_autoscaler_plan_prefers_keda_only_when_needed_and_present():
    cpu = scaling(minReplicas=1, maxReplicas=3, targetCPUPercent=60)
    zero = scaling(minReplicas=0, maxReplicas=3, targetConcurrency=4)
    assert rollout.plan_autoscaler(cpu, "autoscaling/v2", "keda.sh/v1alpha1") == \
        ("autoscaling/v2", None)
    assert rollout.plan_autoscaler(zero, "autoscaling/v2", "keda.sh/v1alpha1") == \
        ("keda.sh/v1alpha1", None)
    version, problem = rollout.plan_autoscaler(zero, "autoscaling/v2beta2", None)
    assert version == "autoscaling/v2beta2" and "KEDA" in problem
    version, problem = rollout.plan_autoscaler(cpu, None, None)
    assert version is None and "autoscaling/v2" in problem
    version, problem = rollout.plan_autoscaler(scaling(minReplicas=0, maxReplicas=2), None,
                                               "keda.sh/v1alpha1")
    assert version == "keda.sh/v1alpha1" and "targetConcurrency" in problem


def test_scaled_object_scales_to_zero_on_concurrency():
    zero = scaling(minReplicas=0, maxReplicas=4, targetConcurrency=3,
                   scaleDownDelaySeconds=120)
    obj = b.build_scaled_object(MD, "keda.sh/v1alpha1", "chat-0123abcd", zero)
    spec = obj["spec"]
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["cooldownPeriod"]) == \
        (0, 4, 120)
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "metrics-api"
    assert trigger["metadata"]["url"] == "http://chat.team-a.svc.cluster.local/v1/stats"
    assert trigger["metadata"]["targetValue"] == "3"
    cpu = b.build_scaled_object(MD, "keda.sh/v1alpha1", "x", scaling(minReplicas=0,
                                                                     maxReplicas=2))
    assert cpu["spec"]["minReplicaCount"] == 1 and cpu["spec"]["triggers"][0]["type"] == "cpu"


@pytest.mark.parametrize("weight, low, high, expected", [
    (0, 1, 3, (1, 0)), (100, 2, 3, (0, 2)), (50, 1, 3, (1, 1)), (10, 1, 3, (2, 1)),
    (25, 1, 10, (3, 1)), (20, 1, 10, (4, 1)), (90, 1, 10, (1, 9)), (30, 4, 10, (7, 3)),
])
def test_split_replicas_approximates_the_weight(weight, low, high, expected):
    assert rollout.split_replicas(weight, low, high) == expected


def test_traffic_by_replicas_sums_to_100():
    assert rollout.traffic_by_replicas([("a", 2), ("b", 1)]) == [
        {"revision": "a", "percent": 67}, {"revision": "b", "percent": 33}]
    assert rollout.traffic_by_replicas([("a", 0)]) == [{"revision": "a", "percent": 100}]


def test_http_route_weights_revision_backends_behind_the_service():
    route = b.build_http_route(MD, "gateway.networking.k8s.io/v1", [("chat-a", 90),
                                                                    ("chat-b", 10)])
    assert route["spec"]["parentRefs"] == [{"group": "", "kind": "Service", "name": "chat",
                                            "port": 80}]
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"name": "chat-a", "port": 80, "weight": 90}, {"name": "chat-b", "port": 80,
                                                       "weight": 10}]
    svc = b.build_revision_service(MD, "chat-b")
    assert svc["spec"]["selector"]["arclight.dev/revision"] == "chat-b"


def test_validate_names_the_bad_field():
    with pytest.raises(InvalidSpec, match=r"spec\.source: .*set exactly one of trainingRun"):
        b.validate({**MD, "spec": {"source": {"trainingRun": "a", "uri": "pvc://c/p"}}})
    with pytest.raises(InvalidSpec, match="metadata.name"):
        b.validate({**MD, "metadata": {**MD["metadata"], "name": "x" * 60}})
    assert b.validate(MD).source.training_run == "demo"


def test_only_pvc_and_mlflow_sources_are_servable():
    assert b.source_problem(PVC) is None
    assert b.source_problem({"mlflowModel": "models:/m/1"}) is None
    assert "cannot be mounted" in b.source_problem({"uri": "file:///tmp/model"})
    assert b.runtime_for(ModelDeploymentSpec.model_validate(
        {"source": PVC_SOURCE, "runtime": "auto"})) == "transformers"
    assert b.runtime_for(ModelDeploymentSpec.model_validate(
        {"source": PVC_SOURCE, "runtime": "vllm"})) == "vllm"


def test_discovery_picks_the_newest_hpa_and_optional_apis():
    old = discovery.from_groups({"autoscaling": ["v1", "v2beta1", "v2beta2"]})
    assert old == discovery.Capabilities("autoscaling/v2beta2", None, None, job_suspend=True)
    new = discovery.from_groups({"autoscaling": ["v2", "v1"], "keda.sh": ["v1alpha1"],
                                 "gateway.networking.k8s.io": ["v1", "v1beta1"]})
    assert new == discovery.Capabilities("autoscaling/v2", "keda.sh/v1alpha1",
                                         "gateway.networking.k8s.io/v1")
    assert discovery.from_groups({}).hpa_api_version is None
