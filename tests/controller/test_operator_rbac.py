"""The chart's ClusterRole is enough: the operator, running as a service account bound to
exactly that role and nothing else (``hack/cluster.sh kubeconfig --operator``: the tooling's
own account, so the chart's binding is rendered here with that account as its subject),
runs a TrainingRun."""
from __future__ import annotations

import pytest
from chart_role import chart_role_kubeconfig
from kube import NO_NODE_SELECTOR, find_condition, wait_until
from kubernetes import client

pytestmark = pytest.mark.controller


@pytest.fixture
def operator_as_service_account(cluster, crds, operator, start_operator):
    """The operator as its service account, bound to the chart's ClusterRole only.
    The admin-credentialed session operator is stopped meanwhile so it cannot help.
    """
    with chart_role_kubeconfig(cluster) as kubeconfig:
        operator.stop()
        proc = start_operator(kubeconfig)
        try:
            yield proc
        finally:
            proc.stop()
            operator.start()


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
