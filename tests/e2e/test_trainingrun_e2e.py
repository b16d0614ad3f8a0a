"""The whole product on the full local cluster: the Helm chart (through Helm's Go SDK) installs
the operator from the image hack/images.sh built, and a math-solver TrainingRun applied
afterwards really trains in a trainer pod (Agent Lightning gateway and rollout runner, the
policy server, the GRPO loop) and ends Succeeded with its best checkpoint on the claim.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kube import find_condition, wait_until
from kubernetes import client, utils

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "arclight.dev", "v1alpha1", "trainingruns"
ARTIFACTS_HOST_PATH = Path("/var/lib/arclight/artifacts")
TRAINER_UID = 65532  # the trainer image's user
RUN_TIMEOUT_S = 900
API_ERRORS = (client.exceptions.ApiException,)  # transient; a failed assertion is not


def _artifacts_manifests(namespace: str) -> list[dict]:
    """hack/demo/artifacts.yaml, re-targeted at this test's namespace (PV names are global)."""
    pv, pvc = yaml.safe_load_all((REPO / "hack/demo/artifacts.yaml").read_text())
    pv["metadata"]["name"] = f"arclight-artifacts-{namespace}"
    pv["spec"]["claimRef"]["namespace"] = namespace
    pv["spec"]["hostPath"]["path"] = str(ARTIFACTS_HOST_PATH / namespace)
    pvc["metadata"]["namespace"] = namespace
    pvc["spec"]["volumeName"] = pv["metadata"]["name"]
    return [pv, pvc]


def _helm(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "hack/helm.py"), *args],
        env={**os.environ, "KUBECONFIG": cluster.kubeconfig},
        capture_output=True, text=True, timeout=420, check=False)


@pytest.fixture(scope="module")
def operator_namespace(cluster) -> Iterator[str]:
    """A namespace with the operator installed by the chart, watching only that namespace."""
    core = client.CoreV1Api(cluster.api)
    namespace = f"e2e-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    wait_until(lambda: core.read_namespaced_service_account("default", namespace).secrets,
               timeout=30, what="the default service account token")
    cluster.kubectl("apply", "-f", str(REPO / "crds"))  # CRDs are shared: applied, not owned
    # What a local-path provisioner does: a directory on the node the trainer's user owns.
    host_dir = ARTIFACTS_HOST_PATH / namespace
    host_dir.mkdir(parents=True, exist_ok=True)
    os.chown(host_dir, TRAINER_UID, TRAINER_UID)
    for manifest in _artifacts_manifests(namespace):
        utils.create_from_dict(cluster.api, manifest)
    try:
        installed = _helm(
            cluster, "install", "--namespace", namespace, "--wait", "300",
            "--set", "image.tag=dev", "--set", "replicaCount=1", "--set", "crds.install=false",
            "--set", f"watchNamespaces={{{namespace}}}",
            "--set", "trainer.image=docker.io/arclight/trainer:dev",
            "--set", "artifacts.claim=arclight-artifacts")
        assert installed.returncode == 0, installed.stderr[-3000:]
        yield namespace
    finally:  # runs first, while the operator still runs: an unfinished run holds a finalizer
        client.CustomObjectsApi(cluster.api).delete_collection_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL)
        wait_until(lambda: not client.CustomObjectsApi(cluster.api).list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL)["items"], timeout=60, what="runs deleted")
        _helm(cluster, "uninstall", "--namespace", namespace)
        core.delete_namespace(namespace)
        core.delete_persistent_volume(f"arclight-artifacts-{namespace}")
        shutil.rmtree(host_dir, ignore_errors=True)


def _operator_pod(cluster, namespace: str):
    pods = client.CoreV1Api(cluster.api).list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/name=arclight").items
    return pods[0] if pods else None


def test_chart_installs_a_ready_least_privileged_operator(cluster, operator_namespace):
    pod = wait_until(lambda: _operator_pod(cluster, operator_namespace), timeout=60,
                     what="the operator pod")
    ready = {c.type: c.status for c in pod.status.conditions or []}
    assert ready.get("Ready") == "True", pod.status
    container = pod.spec.containers[0]
    assert container.image == "docker.io/arclight/operator:dev"
    assert container.security_context.read_only_root_filesystem is True
    assert pod.spec.security_context.run_as_non_root is True
    assert pod.spec.service_account_name == "arclight-operator"


def test_math_solver_trains_to_success_in_a_trainer_pod(cluster, operator_namespace):
    ns = operator_namespace
    api = client.CustomObjectsApi(cluster.api)
    run = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun",
           "metadata": {"name": "math", "namespace": ns},
           "spec": {"template": "math-solver",
                    "dataset": {"validationFraction": "0.05"},
                    "hyperparameters": {"maxSteps": 2, "batchSize": 2},
                    "checkpoint": {"everySteps": 1, "keep": 2}}}
    api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, run)

    def read() -> dict:
        return api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "math")

    resolved = wait_until(lambda: (read().get("status") or {}).get("resolved"), timeout=60,
                          what="status.resolved")
    assert resolved["template"] == "math-solver" and resolved["algorithm"] == "grpo"

    # While it trains, `kubectl get tr` shows progress and reward from the live report.
    def live_row() -> str | None:
        status = read().get("status") or {}
        if status.get("phase") == "Running" and (status.get("progress") or {}).get("step"):
            return cluster.kubectl("get", "tr", "math", "-n", ns).stdout
        assert status.get("phase") not in ("Failed",), json.dumps(status, indent=1)
        return None

    row = wait_until(live_row, timeout=RUN_TIMEOUT_S, interval=2, what="a running step",
                     ignore=API_ERRORS)
    print(row)
    header, values = row.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "TEMPLATE", "PHASE", "PROGRESS", "REWARD", "CREDITS"]
    _, _, phase, percent, reward = values.split()[:5]
    assert phase == "Running" and 0 < int(percent) < 100
    assert 0.0 <= float(reward) <= 1.0

    def finished() -> dict | None:
        status = read().get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    status = wait_until(finished, timeout=RUN_TIMEOUT_S, interval=3, what="the run to finish",
                        ignore=API_ERRORS)
    print(json.dumps({k: status.get(k) for k in ("phase", "progress", "metrics",
                                                  "bestCheckpoint", "diagnosis")}, indent=1))
    assert status["phase"] == "Succeeded", status.get("diagnosis")
    assert find_condition({"status": status}, "Succeeded")["status"] == "True"
    assert status["progress"]["step"] == 2 and status["progress"]["percent"] == 100
    best = status["bestCheckpoint"]
    assert best["uri"].startswith(f"pvc://arclight-artifacts/{ns}/math/"), best
    # The claim is a hostPath on this single node: the checkpoint is a loadable model dir.
    model_dir = ARTIFACTS_HOST_PATH / ns / best["uri"].removeprefix("pvc://arclight-artifacts/")
    assert (model_dir / "config.json").is_file(), sorted(p.name for p in model_dir.parent.iterdir())

    # The served model can answer as the agent: the template travels with the weights.
    assert json.loads((model_dir / "arclight-agent.json").read_text())["template"] == "math-solver"

    logs = cluster.kubectl("logs", "job/math-trainer-1", "-n", ns, timeout=60).stdout
    assert "validation reward before=" in logs, logs[-2000:]
    assert status["startTime"] <= status["completionTime"]
    # Time to a first model, by phase (the trainer's own table), so regressions show in CI.
    phases = re.search(r"^trainer phases: (.*)$", logs, re.MULTILINE)
    assert phases, logs[-2000:]
    created = read()["metadata"]["creationTimestamp"]
    print(f"time to first model: created {created}, completed {status['completionTime']}; "
          f"{phases.group(0)}")
