"""ModelDeployment children: a Deployment per live revision, the Service ``<md>``, autoscaling
(an HPA, or a KEDA ScaledObject) and, with the Gateway API, a Service per revision plus an
HTTPRoute ``<md>`` that splits traffic by weight.

Pure: ``md`` is the ModelDeployment object (metadata + camelCase spec with defaults filled);
a resolved ``source`` is ``{"uri": "pvc://CLAIM/PATH"}`` or ``{"mlflowModel": "models:/..."}``,
optionally with the ``trainingRun`` it came from.

Without the Gateway API the canary split is approximated by replica ratio: the Service
``<md>`` selects the pods of every live revision, so each replica gets about the same share
of connections and a revision's traffic is its share of the replicas (``status.traffic``
reports that share, not ``canary.weight``). While such a split runs both replica counts are
fixed, so autoscaling pauses until the canary is promoted or removed.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from arclight.api.modeldeployment import KIND, ModelDeploymentSpec
from arclight.core.names import COMPONENT_LABEL, GROUP, child_metadata, owner_labels
from arclight.core.errors import InvalidSpec

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
    name = md["metadata"]["name"]
    if len(name) > MAX_NAME_LENGTH or not name[0].isalpha():
        raise InvalidSpec(f"metadata.name: use a name that starts with a letter and has at most "
                          f"{MAX_NAME_LENGTH} characters, so that its Service and revision "
                          "names stay valid.")
    try:
        return ModelDeploymentSpec.model_validate(md.get("spec") or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        path = "spec" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        raise InvalidSpec(f"{path}: {err['msg'].removeprefix('Value error, ')}") from None


def runtime_for(spec: Mapping[str, Any]) -> str:
    """The concrete runtime: ``auto`` is ``transformers`` (what the trainer image serves)."""
    runtime = spec.get("runtime", "auto")
    return SERVABLE_RUNTIMES[0] if runtime == "auto" else runtime


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
                  resources: Mapping[str, Any]) -> str:
    """``<md>-<hash>``: the same model, runtime and resources always give the same name."""
    key = json.dumps({"model": model_ref(source), "runtime": runtime, "resources": resources},
                     sort_keys=True)
    return f"{md_name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def service_url(md: Mapping[str, Any]) -> str:
    """The cluster DNS URL of the Service ``<md>``."""
    meta = md["metadata"]
    return f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local"


def split_replicas(weight: int, min_replicas: int, max_replicas: int) -> tuple[int, int]:
    """(stable, canary) replicas whose ratio best approximates ``weight`` percent.

    Tries every total from ``max(2, minReplicas)`` to ``maxReplicas``; each side keeps at
    least one replica unless its weight is 0; ties go to fewer replicas.
    """
    if weight <= 0:
        return max(1, min_replicas), 0
    if weight >= 100:
        return 0, max(1, min_replicas)
    low = max(2, min_replicas)
    best: tuple[float, int, int] | None = None
    for total in range(low, max(low, max_replicas) + 1):
        canary = min(total - 1, max(1, round(total * weight / 100)))
        error = abs(100 * canary / total - weight)
        if best is None or error < best[0] - 1e-9:
            best = (error, total - canary, canary)
    assert best is not None
    return best[1], best[2]


def traffic_by_replicas(replicas: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """``traffic[]`` from (revision, replicas): each revision's share of all replicas."""
    total = sum(n for _, n in replicas)
    if total == 0:
        return [{"revision": name, "percent": 100 if i == 0 else 0}
                for i, (name, _) in enumerate(replicas)]
    shares = [round(100 * n / total) for _, n in replicas]
    shares[0] = 100 - sum(shares[1:])
    return [{"revision": name, "percent": share}
            for (name, _), share in zip(replicas, shares)]


def _container_resources(resources: Mapping[str, Any]) -> dict[str, Any]:
    cpu = str(resources.get("cpu") or DEFAULT_CPU)
    memory = str(resources.get("memory") or DEFAULT_MEMORY)
    limits = {"memory": memory}
    gpu = resources.get("gpu") or {}
    count = gpu.get("count", 0)
    if gpu.get("type", "none") != "none" and count not in ("auto", 0):
        limits["nvidia.com/gpu"] = str(count)
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
                     mlflow_uri: str | None = None) -> dict[str, Any]:
    """Deployment ``<revision>`` running the trainer image's model server.

    ``replicas`` None leaves the count to the autoscaler (the field is omitted).
    """
    name = md["metadata"]["name"]
    spec = md["spec"]
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
        "resources": _container_resources(spec.get("resources") or {}),
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS,
                            "readOnlyRootFilesystem": True,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [*mounts, {"name": "tmp", "mountPath": "/tmp"}],
    }
    deployment_spec: dict[str, Any] = {
        "selector": {"matchLabels": labels},
        "template": {
            "metadata": {"labels": labels},
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


def needs_keda(autoscaling: Mapping[str, Any]) -> bool:
    """Scaling to zero or on request concurrency needs KEDA."""
    return autoscaling.get("minReplicas", 1) == 0 or bool(autoscaling.get("targetConcurrency"))


def plan_autoscaler(autoscaling: Mapping[str, Any], hpa_api_version: str | None,
                    keda_api_version: str | None) -> tuple[str | None, str | None]:
    """(apiVersion of the autoscaler to build, or None; a problem to report, or None).

    KEDA when the spec needs it and the cluster has it; else an HPA on CPU with at least
    one replica, and a problem that says what is missing.
    """
    if needs_keda(autoscaling) and keda_api_version:
        if autoscaling.get("minReplicas", 1) == 0 and not autoscaling.get("targetConcurrency"):
            return keda_api_version, ("autoscaling.minReplicas 0 needs targetConcurrency: CPU "
                                      "use cannot wake a model at zero replicas, so one "
                                      "replica is kept.")
        return keda_api_version, None
    problem = None
    if needs_keda(autoscaling):
        problem = ("autoscaling.minReplicas 0 and targetConcurrency need KEDA (keda.sh), which "
                   "this cluster lacks; install KEDA, or set minReplicas >= 1 and "
                   "targetCPUPercent. Scaling on CPU with at least one replica meanwhile.")
    if hpa_api_version is None:
        return None, ("the cluster serves neither autoscaling/v2 nor v2beta2; running "
                      "autoscaling.minReplicas replicas without autoscaling.")
    return hpa_api_version, problem


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
                        autoscaling: Mapping[str, Any]) -> dict[str, Any]:
    """KEDA ScaledObject ``<md>``: concurrency from the servers' ``/v1/stats`` (``inFlight``,
    polled through the Service) or CPU; ``minReplicas`` 0 allows scaling to zero."""
    name = md["metadata"]["name"]
    if autoscaling.get("targetConcurrency"):
        trigger = {"type": "metrics-api", "metricType": "AverageValue",
                   "metadata": {"url": f"{service_url(md)}/v1/stats",
                                "valueLocation": "inFlight",
                                "targetValue": str(autoscaling["targetConcurrency"])}}
    else:
        trigger = {"type": "cpu", "metricType": "Utilization",
                   "metadata": {"value": str(autoscaling.get("targetCPUPercent")
                                             or DEFAULT_CPU_PERCENT)}}
    return {"apiVersion": api_version, "kind": "ScaledObject",
            "metadata": child_metadata(md, name, "autoscaler"),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": target},
                     "minReplicaCount": autoscaling.get("minReplicas", 1)
                     if autoscaling.get("targetConcurrency") else
                     max(1, autoscaling.get("minReplicas", 1)),
                     "maxReplicaCount": autoscaling.get("maxReplicas", 3),
                     "cooldownPeriod": autoscaling.get("scaleDownDelaySeconds", 300),
                     "triggers": [trigger]}}
