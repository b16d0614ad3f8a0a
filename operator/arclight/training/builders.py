"""TrainingRun children (docs/architecture.md): config/report ConfigMaps, RBAC, the trainer
Job of each attempt, the gateway Service and, for multi-node runs, a headless Service.

Pure and typed: ``run`` is the owning TrainingRun (``Owner``), ``spec`` its validated spec,
``config`` the TrainerConfig of the attempt (``arclight.training.resolve``: ``resolve`` then
``with_fixes``) and ``resources`` the resolved compute (``status.resolved.resources``).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from arclight.api.trainer import CONFIG_KEY, TrainerConfig
from arclight.api.trainingrun import ResolvedResources, TrainingRunSpec
from arclight.core.names import (
    GROUP,
    Owner,
    child_metadata,
    metered_pod_metadata,
    owner_labels,
)

KIND = "TrainingRun"
CONFIG_MOUNT = "/etc/arclight"
ARTIFACTS_MOUNT = "/artifacts"
GATEWAY_PORT, METRICS_PORT = 8080, 9090
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
ATTEMPT_LABEL = f"{GROUP}/attempt"
APPLIED_SPEC_ANNOTATION = f"{GROUP}/applied-spec"
OVERRIDES_ANNOTATION = f"{GROUP}/overrides"
#: The attempt whose trainer was stopped (suspended, or stopped by its budget) after a
#: checkpoint: from then on it starts from its latest checkpoint.
INTERRUPTED_ANNOTATION = f"{GROUP}/interrupted-attempt"
#: Spec fields that may change while a run is active; everything else is fixed per attempt.
MUTABLE_FIELDS = frozenset({"suspend", "activeDeadlineSeconds", "ttlSecondsAfterFinished", "notify"})
RUN_AS = 65532
DEFAULT_CPU, DEFAULT_MEMORY = "1", "4Gi"
#: Seconds between the SIGTERM a trainer pod gets (its Job suspended or deleted) and the
#: SIGKILL: the trainer stops at the next step boundary, checkpoints the last completed step
#: and exits Preempted (well under a minute for the bundled model on 2 cores).
TRAINER_GRACE_SECONDS = 120


def config_name(run: str) -> str:
    return f"{run}-config"


def report_name(run: str) -> str:
    return f"{run}-report"


def trainer_name(run: str) -> str:
    """Name of the ServiceAccount, Role and RoleBinding of the trainer."""
    return f"{run}-trainer"


def job_name(run: str, attempt: int) -> str:
    return f"{run}-trainer-{attempt}"


def gateway_name(run: str) -> str:
    return f"{run}-gateway"


def workers_name(run: str) -> str:
    return f"{run}-workers"


def immutable_spec(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The part of the spec an attempt is built from (everything but MUTABLE_FIELDS)."""
    return {k: v for k, v in spec.items() if k not in MUTABLE_FIELDS}


def changed_fields(applied: Mapping[str, Any], spec: Mapping[str, Any]) -> list[str]:
    """Top-level spec fields that differ between the applied and the current spec."""
    current = immutable_spec(spec)
    return sorted(k for k in set(applied) | set(current) if applied.get(k) != current.get(k))


def pvc_claim(uri: str | None) -> str | None:
    """The claim of a ``pvc://CLAIM/PATH`` URI, else None."""
    if uri and uri.startswith("pvc://"):
        return uri[len("pvc://"):].split("/", 1)[0] or None
    return None


def _meta(run: Owner, name: str, component: str, **labels: str) -> dict[str, Any]:
    return child_metadata(run, name, component, labels or None)


def build_config_map(run: Owner, config: TrainerConfig) -> dict[str, Any]:
    """ConfigMap ``<run>-config`` holding ``config.json`` (the TrainerConfig)."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(run, config_name(run.name), "config"),
            "data": {CONFIG_KEY: config.model_dump_json(by_alias=True, indent=2)}}


def build_report_config_map(run: Owner) -> dict[str, Any]:
    """ConfigMap ``<run>-report``, created empty; the trainer fills it."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": _meta(run, report_name(run.name), "report"), "data": {}}


def build_rbac(run: Owner) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding ``<run>-trainer``: only the run's report is writable."""
    name = run.name
    sa = trainer_name(name)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(run, sa, "trainer")},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta(run, sa, "trainer"),
         "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                    "resourceNames": [report_name(name)], "verbs": ["get", "patch", "update"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(run, sa, "trainer"),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
         "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": run.namespace}]},
    ]


def _resources(resolved: ResolvedResources) -> dict[str, Any]:
    """Container resources from the resolution (the spec's values, defaults where it said
    nothing): requests, a memory limit, and the GPUs."""
    requests = {"cpu": resolved.cpu, "memory": resolved.memory}
    limits: dict[str, str] = {"memory": resolved.memory}
    if resolved.gpu.type != "none" and resolved.gpu.count > 0:
        limits["nvidia.com/gpu"] = str(resolved.gpu.count)
    return {"requests": requests, "limits": limits}


def _artifacts_claim(spec: TrainingRunSpec, default_claim: str | None) -> str | None:
    """The claim behind /artifacts: the one in spec.checkpoint.uri, else the platform default."""
    return pvc_claim(spec.checkpoint.uri) or default_claim


def checkpoint_uri_prefix(claim: str, config: TrainerConfig) -> str:
    """``pvc://CLAIM/PATH`` for the run's checkpoint dir, so the trainer reports URIs that a
    ModelDeployment can mount (the trainer's ARCLIGHT_CHECKPOINT_URI_PREFIX)."""
    path = PurePosixPath(config.checkpoint.dir).relative_to(ARTIFACTS_MOUNT)
    return f"pvc://{claim}/{path}".rstrip("/")


def _volumes(spec: TrainingRunSpec, config: TrainerConfig, artifacts_claim: str | None
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    name = config.run.name
    claim = _artifacts_claim(spec, artifacts_claim)
    artifacts = ({"persistentVolumeClaim": {"claimName": claim}} if claim else {"emptyDir": {}})
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": config_name(name)}},
        {"name": "artifacts", **artifacts},
        {"name": "tmp", "emptyDir": {}}]
    mounts: list[dict[str, Any]] = [
        {"name": "config", "mountPath": CONFIG_MOUNT, "readOnly": True},
        {"name": "artifacts", "mountPath": ARTIFACTS_MOUNT},
        {"name": "tmp", "mountPath": "/tmp"}]
    secret = spec.dataset.secret_ref.name if spec.dataset.secret_ref else None
    credentials_dir = config.dataset.credentials_dir
    if secret and credentials_dir:
        volumes.append({"name": "dataset-credentials", "secret": {"secretName": secret}})
        mounts.append({"name": "dataset-credentials", "mountPath": credentials_dir,
                       "readOnly": True})
    return volumes, mounts


def _env(config: TrainerConfig, nodes: int, job: str) -> list[dict[str, Any]]:
    run = config.run
    env: list[dict[str, Any]] = [
        {"name": "ARCLIGHT_RUN_NAME", "value": run.name},
        {"name": "ARCLIGHT_RUN_NAMESPACE", "value": run.namespace},
        {"name": "ARCLIGHT_ATTEMPT", "value": str(run.attempt)},
        {"name": "HOME", "value": "/tmp"}, {"name": "TMPDIR", "value": "/tmp"}]
    if nodes > 1:
        env += [{"name": "ARCLIGHT_NODES", "value": str(nodes)},
                {"name": "ARCLIGHT_NODE_RANK", "valueFrom": {"fieldRef": {
                    "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}},
                {"name": "ARCLIGHT_MASTER_ADDR", "value": f"{job}-0.{workers_name(run.name)}"}]
    return env


def _checkpoint_env(spec: TrainingRunSpec, config: TrainerConfig,
                    artifacts_claim: str | None) -> list[dict[str, Any]]:
    claim = _artifacts_claim(spec, artifacts_claim)
    if not claim:
        return []
    return [{"name": "ARCLIGHT_CHECKPOINT_URI_PREFIX", "value": checkpoint_uri_prefix(claim, config)}]


def build_job(run: Owner, spec: TrainingRunSpec, config: TrainerConfig, *, image: str,
              artifacts_claim: str | None, resources: ResolvedResources,
              overrides: Mapping[str, Any] | None = None, metered: bool = False
              ) -> dict[str, Any]:
    """The trainer Job ``<run>-trainer-<attempt>`` (backoffLimit 0: the operator retries).

    ``resources`` (``status.resolved.resources``) are the pod's requests; ``overrides`` (the
    automatic fixes in force) are recorded on the Job for the next attempt; ``metered`` puts
    the metering finalizer on its pods.
    """
    name = run.name
    attempt = config.run.attempt
    job = job_name(name, attempt)
    nodes = config.resources.nodes
    queue = spec.queue_name
    volumes, mounts = _volumes(spec, config, artifacts_claim)
    pod_labels = {**owner_labels(KIND, name), "app.kubernetes.io/component": "trainer",
                  ATTEMPT_LABEL: str(attempt)}
    container = {
        "name": "trainer",
        "image": spec.agent.image if spec.agent else image,
        "command": ["python", "-m", "arclight_trainer", "run", "--config",
                    f"{CONFIG_MOUNT}/config.json"],
        "ports": [{"name": "gateway", "containerPort": GATEWAY_PORT, "protocol": "TCP"},
                  {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "env": _env(config, nodes, job) + _checkpoint_env(spec, config, artifacts_claim),
        "resources": _resources(resources),
        "volumeMounts": mounts,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}},
    }
    pod_spec: dict[str, Any] = {
        "serviceAccountName": trainer_name(name),
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": TRAINER_GRACE_SECONDS,
        "securityContext": {"runAsNonRoot": True, "runAsUser": RUN_AS, "runAsGroup": RUN_AS,
                            "fsGroup": RUN_AS, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if spec.resources.node_selector:
        pod_spec["nodeSelector"] = dict(spec.resources.node_selector)
    if spec.resources.tolerations:
        pod_spec["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True)
                                   for t in spec.resources.tolerations]
    job_spec: dict[str, Any] = {
        "backoffLimit": 0,
        "suspend": spec.suspend or bool(queue),
        "template": {"metadata": metered_pod_metadata(
            pod_labels, run.uid, resources.gpu.type if resources.gpu.count else "none", metered),
            "spec": pod_spec},
    }
    if spec.active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = spec.active_deadline_seconds
    if spec.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = spec.ttl_seconds_after_finished
    if nodes > 1:
        job_spec.update(completionMode="Indexed", completions=nodes, parallelism=nodes)
        pod_spec["subdomain"] = workers_name(name)
    extra = {KUEUE_QUEUE_LABEL: queue} if queue else {}
    metadata = _meta(run, job, "trainer", **{ATTEMPT_LABEL: str(attempt)}, **extra)
    metadata["annotations"] = {
        APPLIED_SPEC_ANNOTATION: json.dumps(
            immutable_spec(spec.model_dump(by_alias=True, mode="json", exclude_none=True)),
            sort_keys=True, separators=(",", ":")),
        OVERRIDES_ANNOTATION: json.dumps(dict(overrides or {}), sort_keys=True),
    }
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": job_spec}


def build_gateway_service(run: Owner) -> dict[str, Any]:
    """Service ``<run>-gateway`` selecting the trainer pod (ports gateway and metrics)."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(run, gateway_name(run.name), "gateway"),
            "spec": {"selector": {**owner_labels(KIND, run.name),
                                  "app.kubernetes.io/component": "trainer"},
                     "ports": [{"name": "gateway", "port": GATEWAY_PORT, "protocol": "TCP",
                                "targetPort": "gateway"},
                               {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP",
                                "targetPort": "metrics"}]}}


def build_workers_service(run: Owner) -> dict[str, Any]:
    """Headless Service ``<run>-workers`` giving multi-node trainer pods stable DNS names."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": _meta(run, workers_name(run.name), "workers"),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "selector": {**owner_labels(KIND, run.name),
                                  "app.kubernetes.io/component": "trainer"},
                     "ports": [{"name": "gateway", "port": GATEWAY_PORT,
                                "protocol": "TCP"}]}}


def build_children(run: Owner, spec: TrainingRunSpec, config: TrainerConfig, *, image: str,
                   artifacts_claim: str | None, resources: ResolvedResources,
                   overrides: Mapping[str, Any] | None = None, metered: bool = False
                   ) -> list[dict[str, Any]]:
    """Every child of the attempt, in the order to apply them (the Job last)."""
    children = [build_config_map(run, config), build_report_config_map(run), *build_rbac(run),
                build_gateway_service(run)]
    if config.resources.nodes > 1:
        children.append(build_workers_service(run))
    children.append(build_job(run, spec, config, image=image, artifacts_claim=artifacts_claim,
                              resources=resources, overrides=overrides, metered=metered))
    return children
