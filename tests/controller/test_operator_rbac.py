"""The chart's ClusterRole is enough: the operator, running as a service account bound to
exactly that role and nothing else (``hack/cluster.sh kubeconfig --operator``: the tooling's
own account, so the chart's binding is rendered here with that account as its subject),
runs a TrainingRun."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from helm_python.chart import Chart
from kube import NO_NODE_SELECTOR, find_condition, wait_until
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.controller
REPO = Path(__file__).resolve().parents[2]
ACCOUNT = {"kind": "ServiceAccount", "name": "arclight-operator-dev",
           "namespace": "arclight-system"}


def chart_rbac() -> list[dict]:
    with Chart.load(REPO / "charts" / "arclight") as chart:
        rendered = chart.render(values={}, name="rbac-test", namespace="arclight-system")
    docs = [d for text in rendered.values() for d in yaml.safe_load_all(text) if d]
    return [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")
            and d["metadata"]["name"] == "rbac-test-arclight-operator"]


def _allowed(cluster, verb: str, resource: str, group: str) -> bool:
    """Whether the operator's service account may do this, as the API server decides now."""
    review = client.AuthorizationV1Api(cluster.api).create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "system:serviceaccount:arclight-system:arclight-operator-dev",
                 "resourceAttributes": {"verb": verb, "resource": resource, "group": group}}})
    return bool(review.status.allowed)


@pytest.fixture
def operator_as_service_account(cluster, crds, operator, start_operator):
    """The operator as its service account, bound to the chart's ClusterRole only.

    The admin-credentialed session operator is stopped meanwhile so it cannot help.
    """
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    role, binding = sorted(chart_rbac(), key=lambda d: d["kind"])
    assert [s["name"] for s in binding["subjects"]] == ["arclight-operator"]  # the chart's
    binding["subjects"] = [ACCOUNT]
    for create, obj in ((rbac.create_cluster_role, role),
                        (rbac.create_cluster_role_binding, binding)):
        try:
            create(obj)
        except ApiException as exc:
            if exc.status != 409:
                raise
    kubeconfig = subprocess.run([str(REPO / "hack" / "cluster.sh"), "kubeconfig", "--operator"],
                                capture_output=True, text=True, timeout=60,
                                check=True).stdout.strip().splitlines()[-1]
    wait_until(lambda: _allowed(cluster, "list", "trainingruns", "arclight.dev"), timeout=30,
               what="the authorizer to see the new binding")
    operator.stop()
    proc = start_operator(kubeconfig)
    try:
        yield proc
    finally:
        proc.stop()
        operator.start()
    rbac.delete_cluster_role_binding(binding["metadata"]["name"])
    rbac.delete_cluster_role(role["metadata"]["name"])


def test_operator_works_with_the_charts_cluster_role(cluster, namespace,
                                                     operator_as_service_account):
    api = client.CustomObjectsApi(cluster.api)
    api.create_namespaced_custom_object("arclight.dev", "v1alpha1", namespace, "trainingruns", {
        "apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun",
        "metadata": {"name": "rbac"},
        "spec": {"template": "math-solver", "resources": {"nodeSelector": NO_NODE_SELECTOR}}})

    def admitted():
        run = api.get_namespaced_custom_object("arclight.dev", "v1alpha1", namespace,
                                               "trainingruns", "rbac")
        cond = find_condition(run, "Admitted")
        return cond if cond and cond["status"] == "True" else None

    try:
        wait_until(admitted, 45, what="run admitted by the least-privileged operator")
    except AssertionError:
        pytest.fail(operator_as_service_account.log_tail())
    role = client.RbacAuthorizationV1Api(cluster.api).read_namespaced_role("rbac-trainer",
                                                                           namespace)
    assert role.rules[0].resource_names == ["rbac-report"]
    assert "Forbidden" not in operator_as_service_account.log_tail(400)
