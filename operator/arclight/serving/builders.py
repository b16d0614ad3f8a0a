"""ModelDeployment children: a Deployment per live revision, the Service ``<md>``, autoscaling
(an HPA, or a KEDA ScaledObject) and, with the Gateway API, a Service per revision plus an
HTTPRoute ``<md>`` that splits traffic by weight.

Pure: ``md`` is the ModelDeployment object (its metadata names and owns the children); the
spec parts a builder needs come typed (``ModelDeploymentSpec``, ``Autoscaling``,
``ServingResources``). A resolved ``source`` is ``{"uri": "pvc://CLAIM/PATH"}`` or
``{"mlflowModel": "models:/..."}``, optionally with the ``trainingRun`` it came from (the form
``status.revisions[].source`` records).

Without the Gateway API the canary split is approximated by replica ratio: the Service
``<md>`` selects the pods of every live revision, so each replica gets about the same share
of connections (see ``arclight.serving.rollout`` for the split and the traffic it gives).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from arclight.api.modeldeployment import (
    KIND,
    Autoscaling,
    ModelDeploymentSpec,
    ServingResources,
)
from arclight.core.errors import parse_spec
from arclight.core.names import (
    COMPONENT_LABEL,
    GROUP,
    child_metadata,
    metered_pod_metadata,
    owner_labels,
)

REVISION_LABEL = f"{GROUP}/revision"
SERVER_COMPONENT = "server"
SERVER_PORT, SERVICE_PORT = 8080, 80
MODEL_MOUNT = "/models"
RUN_AS = 65532
DEFAULT_CPU, DEFAULT_MEMORY = "1", "2Gi"
DEFAULT_CPU_PERCENT = 80
#: HPA scale-down stabilization cannot exceed one hour.
MAX_STABILIZATION_SECONDS = 3600
#: Longest name whose revisions (``<md>-<hash>``) stay valid label values and Service names.
MAX_NAME_LENGTH = 54
#: Runtimes the trainer image can serve; ``auto`` resolves to the first.
SERVABLE_RUNTIMES = ("transformers",)


def validate(md: Mapping[str, Any]) -> ModelDeploymentSpec:
    """The validated spec of ``md``; raise InvalidSpec naming the first bad field."""
    return parse_spec(md, ModelDeploymentSpec, MAX_NAME_LENGTH)


def runtime_for(spec: ModelDeploymentSpec) -> str:
    """The concrete runtime: ``auto`` is ``transformers`` (what the trainer image serves)."""
    return SERVABLE_RUNTIMES[0] if spec.runtime == "auto" else spec.runtime


def model_ref(source: Mapping[str, str]) -> str:
    """What identifies the weights of a resolved source: its URI or MLflow model URI."""
    return source.get("uri") or source["mlflowModel"]


def source_problem(source: Mapping[str, str]) -> str | None:
    """Why a resolved source cannot be served from a cluster, or None."""
    uri = source.get("uri")
    if uri is None or uri.startswith("pvc://"):
        return None
    return (f"model {uri} cannot be mounted into a serving pod; serve a pvc://CLAIM/PATH "
            "directory or a registered MLflow model (source.mlflowModel).")


def revision_name(md_name: str, source: Mapping[str, str], runtime: str,
                  resources: ServingResources) -> str:
    """``<md>-<hash>``: the same model, runtime and resources always give the same name (the
    resources as the spec spells them, unset fields left out: names stay stable across
    operator versions)."""
    key = json.dumps({"model": model_ref(source), "runtime": runtime,
                      "resources": resources.model_dump(by_alias=True, mode="json",
                                                        exclude_none=True)},
                     sort_keys=True)
    return f"{md_name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def service_url(md: Mapping[str, Any]) -> str:
    """The cluster DNS URL of the Service ``<md>``."""
    meta = md["metadata"]
    return f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local"


def _container_resources(resources: ServingResources) -> dict[str, Any]:
    cpu = str(resources.cpu or DEFAULT_CPU)
    memory = str(resources.memory or DEFAULT_MEMORY)
    limits = {"memory": memory}
    # A GPU limit only for an explicit count (an unset count requests none, as before).
    if resources.gpu.type != "none" and resources.gpu.count:
        limits["nvidia.com/gpu"] = str(resources.gpu.count)
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": limits}


def _model_location(source: Mapping[str, str], mlflow_uri: str | None
                    ) -> tuple[str, list[dict], list[dict], list[dict]]:
    """(--model argument, volumes, mounts, env) for a resolved source."""
    uri = source.get("uri")
    if uri is not None:
        claim, _, path = uri.removeprefix("pvc://").partition("/")
        volume = {"name": "model",
                  "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}
        mount = {"name": "model", "mountPath": MODEL_MOUNT, "readOnly": True}
        return f"{MODEL_MOUNT}/{path}".rstrip("/"), [volume], [mount], []
    env = [{"name": "MLFLOW_TRACKING_URI", "value": mlflow_uri}] if mlflow_uri else []
    return source["mlflowModel"], [], [], env


def build_deployment(md: Mapping[str, Any], revision: str, source: Mapping[str, str], *,
                     image: str, runtime: str, replicas: int | None,
                     mlflow_uri: str | None = None,
                     spec: ModelDeploymentSpec | None = None, metered: bool = False
                     ) -> dict[str, Any]:
    """Deployment ``<revision>`` running the trainer image's model server.

    ``spec`` is the validated spec (default: validated from ``md["spec"]``). ``replicas``
    None omits the field; the operator never does that for a Deployment it applied before
    (server-side apply would then drop the count to the default of 1). ``metered`` puts
    the metering finalizer on its pods.
    """
    name = md["metadata"]["name"]
    if spec is None:
        spec = validate(md)
    labels = {**owner_labels(KIND, name), COMPONENT_LABEL: SERVER_COMPONENT,
              REVISION_LABEL: revision}
    model, volumes, mounts, env = _model_location(source, mlflow_uri)
    container = {
        "name": "server", "image": image,
        "command": ["python3", "-m", "arclight_trainer.serve", "--model", model,
                    "--port", str(SERVER_PORT), "--name", name, "--runtime", runtime],
        "ports": [{"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"}],
        "env": [{"name": "HOME", "value": "/tmp"}, {"name": "HF_HOME", "value": "/tmp/hf"},
                {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"}, *env],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                           "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                          "initialDelaySeconds": 120, "periodSeconds": 20},
        "resources": _container_resources(spec.resources),
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS,
                            "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": metered_pod_metadata(
                labels, md["metadata"].get("uid") or "",
                spec.resources.gpu.type if spec.resources.gpu.count else "none", metered),
            "spec": {"containers": [container], "automountServiceAccountToken": False,
                     "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS,
                                         "fsGroup": RUN_AS,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "volumes": [*volumes, {"name": "tmp", "emptyDir": {}}]},
        },
    }
    if replicas is not None:
        deployment_spec["replicas"] = replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": child_metadata(md, revision, SERVER_COMPONENT, {REVISION_LABEL: revision}),
            "spec": deployment_spec}


def build_service(md: Mapping[str, Any]) -> dict[str, Any]:
    """Service ``<md>`` (port 80 -> 8080) selecting the pods of every live revision."""
    name = md["metadata"]["name"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": child_metadata(md, name, "endpoint"),
            "spec": {"selector": {**owner_labels(KIND, name), COMPONENT_LABEL: SERVER_COMPONENT},
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http",
                                "protocol": "TCP"}]}}


def build_revision_service(md: Mapping[str, Any], revision: str) -> dict[str, Any]:
    """Service ``<revision>``: one revision's pods, a weighted HTTPRoute backend."""
    name = md["metadata"]["name"]
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": child_metadata(md, revision, "revision-endpoint",
                                       {REVISION_LABEL: revision}),
            "spec": {"selector": {**owner_labels(KIND, name), COMPONENT_LABEL: SERVER_COMPONENT,
                                  REVISION_LABEL: revision},
                     "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http",
                                "protocol": "TCP"}]}}


def build_http_route(md: Mapping[str, Any], api_version: str,
                     weights: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """HTTPRoute ``<md>`` attached to the Service ``<md>`` (Gateway API for meshes, GAMMA)
    sending each revision its weight of the requests."""
    name = md["metadata"]["name"]
    return {"apiVersion": api_version, "kind": "HTTPRoute",
            "metadata": child_metadata(md, name, "route"),
            "spec": {"parentRefs": [{"group": "", "kind": "Service", "name": name,
                                     "port": SERVICE_PORT}],
                     "rules": [{"backendRefs": [{"name": revision, "port": SERVICE_PORT,
                                                 "weight": weight}
                                                for revision, weight in weights]}]}}


def build_hpa(md: Mapping[str, Any], api_version: str, target: str, min_replicas: int,
              max_replicas: int, cpu_percent: int | None, scale_down_delay: int
              ) -> dict[str, Any]:
    """HorizontalPodAutoscaler ``<md>`` (``autoscaling/v2`` or ``v2beta2``: same shape) on CPU."""
    name = md["metadata"]["name"]
    return {"apiVersion": api_version, "kind": "HorizontalPodAutoscaler",
            "metadata": child_metadata(md, name, "autoscaler"),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": target},
                     "minReplicas": max(1, min_replicas),
                     "maxReplicas": max(max_replicas, min_replicas, 1),
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {
                             "type": "Utilization",
                             "averageUtilization": cpu_percent or DEFAULT_CPU_PERCENT}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": min(
                         scale_down_delay, MAX_STABILIZATION_SECONDS)}}}}


def build_scaled_object(md: Mapping[str, Any], api_version: str, target: str,
                        autoscaling: Autoscaling) -> dict[str, Any]:
    """KEDA ScaledObject ``<md>``: concurrency from the servers' ``/v1/stats`` (``inFlight``,
    polled through the Service) or CPU; ``minReplicas`` 0 allows scaling to zero (only on
    concurrency: CPU use cannot wake a model at zero replicas)."""
    name = md["metadata"]["name"]
    if autoscaling.target_concurrency:
        trigger = {"type": "metrics-api", "metricType": "AverageValue",
                   "metadata": {"url": f"{service_url(md)}/v1/stats",
                                "valueLocation": "inFlight",
                                "targetValue": str(autoscaling.target_concurrency)}}
        min_count = autoscaling.min_replicas
    else:
        trigger = {"type": "cpu", "metricType": "Utilization",
                   "metadata": {"value": str(autoscaling.target_cpu_percent
                                             or DEFAULT_CPU_PERCENT)}}
        min_count = max(1, autoscaling.min_replicas)
    return {"apiVersion": api_version, "kind": "ScaledObject",
            "metadata": child_metadata(md, name, "autoscaler"),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": target},
                     "minReplicaCount": min_count,
                     "maxReplicaCount": autoscaling.max_replicas,
                     "cooldownPeriod": autoscaling.scale_down_delay_seconds,
                     "triggers": [trigger]}}
