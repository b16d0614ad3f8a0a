"""The chart's ClusterRole bound to the tooling's own service account, for tests that run the
operator with exactly the chart's rights (``hack/cluster.sh kubeconfig --operator``)."""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml
from helm_python.chart import Chart
from kube import wait_until
from kubernetes import client
from kubernetes.client.exceptions import ApiException

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


@contextmanager
def chart_role_kubeconfig(cluster) -> Iterator[str]:
    """A kubeconfig of ``arclight-operator-dev``, bound to the chart's ClusterRole only (the
    binding rendered with that account as its subject).

    The role and binding are created, or replaced by this checkout's when they differ, and
    then left in place:
    deleting and re-creating them between tests races the API server's authorizer cache (a
    check can still answer "allowed" from the old binding while the new operator's first
    lists are refused, and kopf then backs off for a minute)."""
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    role, binding = sorted(chart_rbac(), key=lambda d: d["kind"])
    assert [s["name"] for s in binding["subjects"]] == ["arclight-operator"]  # the chart's
    binding["subjects"] = [ACCOUNT]
    for create, read, replace, obj in (
            (rbac.create_cluster_role, rbac.read_cluster_role, rbac.replace_cluster_role, role),
            (rbac.create_cluster_role_binding, rbac.read_cluster_role_binding,
             rbac.replace_cluster_role_binding, binding)):
        try:
            create(obj)
        except ApiException as exc:
            if exc.status != 409:
                raise
            name = obj["metadata"]["name"]
            current = rbac.api_client.sanitize_for_serialization(read(name))
            fields = ("rules",) if obj["kind"] == "ClusterRole" else ("subjects", "roleRef")
            if all(current.get(f) == obj.get(f) for f in fields):
                continue  # as wanted: touching it would flip the authorizer's cache
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            replace(name, obj)
    kubeconfig = subprocess.run([str(REPO / "hack" / "cluster.sh"), "kubeconfig", "--operator"],
                                capture_output=True, text=True, timeout=60,
                                check=True).stdout.strip().splitlines()[-1]
    for verb, resource, group in (("list", "trainingruns", "arclight.dev"),
                                  ("patch", "pods", ""), ("list", "namespaces", ""),
                                  ("list", "persistentvolumeclaims", ""),
                                  ("watch", "creditbudgets", "arclight.dev")):
        wait_until(lambda verb=verb, resource=resource, group=group: _allowed(
            cluster, verb, resource, group), timeout=30,
            what=f"the authorizer to allow {verb} {resource}")
    yield kubeconfig
