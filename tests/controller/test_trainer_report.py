"""The trainer's report channel against a real kube-apiserver, with the run's own credentials.

The report ConfigMap and the trainer's ServiceAccount/Role/RoleBinding come from the
operator's builders (the real manifests); the reporter is `arclight_trainer.report`'s
in-cluster ConfigMap reporter reading the service account's token and the cluster CA from
a service-account directory, exactly as in the trainer pod.
"""
from __future__ import annotations

import base64
import json
import secrets
import shutil
from urllib.parse import urlsplit

import pytest
from arclight.core.names import Owner
from arclight.training.builders import build_rbac, build_report_config_map, report_name
from arclight_trainer import report
from kube import wait_until
from kubernetes import client, utils

pytestmark = pytest.mark.controller
GROUP, VERSION, PLURAL = "arclight.dev", "v1alpha1", "trainingruns"
WAIT = 45


def _create_run(cluster, namespace: str) -> dict:
    """A TrainingRun to own the children (no operator runs here, so nothing else is made)."""
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun",
            "metadata": {"name": f"run-{secrets.token_hex(3)}", "namespace": namespace},
            "spec": {"template": "math-solver", "hyperparameters": {"maxSteps": 4}}}
    return client.CustomObjectsApi(cluster.api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, body)


def _sa_token(cluster, namespace: str, name: str) -> str:
    """The token of ServiceAccount `name` (1.20: from its token Secret)."""
    core = client.CoreV1Api(cluster.api)

    def token():
        sa = core.read_namespaced_service_account(name, namespace)
        if not sa.secrets:
            return None
        secret = core.read_namespaced_secret(sa.secrets[0].name, namespace)
        return base64.b64decode(secret.data["token"]).decode() if secret.data else None

    return wait_until(token, WAIT, what=f"token of {namespace}/{name}")


def _wait_rbac(cluster, namespace: str, sa: str, configmap: str) -> None:
    """Wait until the authorizer lets `sa` patch `configmap` (the RoleBinding is in effect)."""
    review = client.V1SubjectAccessReview(spec=client.V1SubjectAccessReviewSpec(
        user=f"system:serviceaccount:{namespace}:{sa}",
        resource_attributes=client.V1ResourceAttributes(
            namespace=namespace, verb="patch", resource="configmaps", name=configmap)))
    auth = client.AuthorizationV1Api(cluster.api)
    wait_until(lambda: auth.create_subject_access_review(review).status.allowed, WAIT,
               what=f"RBAC for {sa}")


def _report_data(cluster, namespace: str, run: str) -> dict:
    cm = client.CoreV1Api(cluster.api).read_namespaced_config_map(report_name(run), namespace)
    return {key: json.loads(value) for key, value in (cm.data or {}).items()}


@pytest.fixture
def owned_children(cluster, namespace, crds):
    """Two runs with their report ConfigMaps and trainer RBAC, as the operator builds them."""
    runs = [_create_run(cluster, namespace) for _ in range(2)]
    for run in runs:
        manifests = [build_report_config_map(Owner.of(run)), *build_rbac(Owner.of(run))]
        utils.create_from_yaml(cluster.api, yaml_objects=manifests, namespace=namespace)
    return [run["metadata"]["name"] for run in runs]


def test_configmap_reporter_writes_documents_with_the_run_token(
        cluster, namespace, owned_children, tmp_path, monkeypatch, capsys):
    run, other = owned_children
    token = _sa_token(cluster, namespace, f"{run}-trainer")
    _wait_rbac(cluster, namespace, f"{run}-trainer", report_name(run))
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(token)
    shutil.copyfile(cluster.api.configuration.ssl_ca_cert, sa_dir / "ca.crt")
    server = urlsplit(cluster.api.configuration.host)
    monkeypatch.setattr(report, "SA_DIR", sa_dir)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", server.hostname)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port or 443))

    reporter = report.make_reporter(None, report_name(run), namespace)
    assert isinstance(reporter, report.ConfigMapReporter)
    progress = report.progress_report(1, 4, 1, seconds_per_step=10.0)
    metrics = report.step_metrics([0.0, 0.0, 0.0, 1.0], 0.25, validation_reward=0.1,
                                  policy_loss=-0.01, loss=-0.02, steps_per_second=0.1,
                                  samples_per_second=0.4)
    reporter.update(progress=progress, metrics=metrics)
    # A later update merges: progress replaced, metrics kept, result added.
    reporter.update(progress=report.progress_report(4, 4, 1, seconds_per_step=10.0),
                    result=report.training_result(0.1, 0.3, "pvc://artifacts/x/final"))
    assert reporter.failures == 0

    data = _report_data(cluster, namespace, run)
    assert set(data) == {"progress", "metrics", "result"}
    assert data["progress"]["step"] == 4 and data["progress"]["totalSteps"] == 4
    assert data["progress"]["etaSeconds"] == 0 and data["progress"]["epoch"] == 1
    assert data["metrics"] == report.document_json(metrics)
    assert data["metrics"]["reward"] == {"mean": 0.25, "min": 0.0, "max": 1.0,
                                         "std": pytest.approx(0.433, abs=1e-3)}
    assert data["metrics"]["successRate"] == 0.25 and data["metrics"]["loss"] == -0.02
    assert data["result"]["validationRewardAfter"] == 0.3
    assert data["result"]["modelUri"] == "pvc://artifacts/x/final"

    # Least privilege: the same token cannot write another run's report.
    intruder = report.ConfigMapReporter(report_name(other), namespace, server=reporter.url.split(
        "/api/")[0], token=token, ca_file=str(sa_dir / "ca.crt"))
    intruder.update(progress=progress)
    assert intruder.failures == 1
    assert _report_data(cluster, namespace, other) == {}
    out = capsys.readouterr()
    assert "HTTP 403" in out.out
    assert token not in out.out + out.err
