"""`helm uninstall` of the chart keeps the CRDs and every user object (crds.keep, the default:
`helm.sh/resource-policy: keep`, as cert-manager does) and removes everything else it
installed; reinstalling the same release adopts the kept CRDs and the operator carries on with
the runs it left. Installed with hack/helm.py (Helm's Go SDK), the operator image that
hack/images.sh built, on the full local cluster.

The CRDs are cluster-wide and shared with everyone using the cluster, so this test adopts the
existing ones into its release only after checking that the rendered chart marks every CRD
`keep` (an uninstall without it would delete every TrainingRun of the cluster), and restores
their labels and annotations afterwards. Its release has its own name, so its cluster-scoped
RBAC objects do not collide with other releases, and it watches only its own namespace.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import helm_python as helm
import pytest
import yaml
from kube import NO_NODE_SELECTOR, wait_until
from kubernetes import client

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "arclight.dev", "v1alpha1", "trainingruns"
HELM_OWNER_ANNOTATIONS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")
RUN = "keep-me"
#: No node has this label: the trainer pod stays Pending, nothing trains (and nothing is slow).
NO_NODE = {"arclight.dev/no-such-node": "true"}


def _helm(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack/helm.py"), *args],
        env={**os.environ, "KUBECONFIG": cluster.kubeconfig},
        capture_output=True, text=True, timeout=420, check=False)
    print(f"$ hack/helm.py {' '.join(args)}\n{result.stdout}{result.stderr[-3000:]}")
    return result


def _rendered_crds(release: str, namespace: str, sets: list[str]) -> list[dict]:
    text = subprocess.run(
        [sys.executable, str(REPO / "hack/helm.py"), "template", "--release", release,
         "--namespace", namespace, *sets], capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(text) if d and d["kind"] == "CustomResourceDefinition"]


@contextlib.contextmanager
def adopted_release(cluster, prefix: str, *extra: str) -> Iterator[tuple[str, str, list[str]]]:
    """(release, namespace, --set flags) of a chart release with its own name, watching only its
    own fresh namespace, with crds.install=true: the cluster's CRDs are prepared for adoption
    and their labels and annotations restored afterwards."""
    core = client.CoreV1Api(cluster.api)
    ext = client.ApiextensionsV1Api(cluster.api)
    token = secrets.token_hex(3)
    name, namespace = f"{prefix}-{token}", f"e2e-{prefix}-{token}"
    sets = ["--set", "image.tag=dev", "--set", "crds.install=true",
            "--set", f"watchNamespaces={{{namespace}}}",
            "--set", "trainer.image=docker.io/arclight/trainer:dev", *extra]
    crds = _rendered_crds(name, namespace, sets)
    # The safety net before anything is installed: every CRD the release will own says keep.
    assert crds and all(c["metadata"]["annotations"].get("helm.sh/resource-policy") == "keep"
                        for c in crds), "the chart must mark its CRDs keep"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=namespace, labels={"arclight.dev/test": "true"})))
    wait_until(lambda: core.read_namespaced_service_account("default", namespace).secrets,
               timeout=30, what="the default service account token")
    before: dict[str, dict | None] = {}
    try:
        for crd in crds:
            crd_name = crd["metadata"]["name"]
            try:
                live = ext.read_custom_resource_definition(crd_name)
            except client.exceptions.ApiException as exc:
                if exc.status != 404:
                    raise
                before[crd_name] = None
                continue
            before[crd_name] = {"labels": dict(live.metadata.labels or {}),
                                "annotations": dict(live.metadata.annotations or {})}
            # Helm adopts an existing object only when it carries the release's ownership marks.
            ext.patch_custom_resource_definition(crd_name, {"metadata": {
                "labels": {"app.kubernetes.io/managed-by": "Helm"},
                "annotations": {"meta.helm.sh/release-name": name,
                                "meta.helm.sh/release-namespace": namespace}}})
        yield name, namespace, sets
    finally:
        api = client.CustomObjectsApi(cluster.api)
        for run in api.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL)["items"]:
            api.patch_namespaced_custom_object(  # no operator left to remove its finalizer
                GROUP, VERSION, namespace, PLURAL, run["metadata"]["name"],
                {"metadata": {"finalizers": None}})
        _helm(cluster, "uninstall", "--release", name, "--namespace", namespace)
        for crd_name, meta in before.items():
            _restore_metadata(ext, crd_name, meta)
        core.delete_namespace(namespace)


def _restore_metadata(ext, crd_name: str, meta: dict | None) -> None:
    """Labels and annotations of a CRD as they were before the test; a CRD the release created
    is left as `kubectl apply -f crds/` would have made it (no Helm ownership marks)."""
    try:
        live = ext.read_custom_resource_definition(crd_name)
    except client.exceptions.ApiException:
        return
    labels = dict(live.metadata.labels or {})
    annotations = dict(live.metadata.annotations or {})
    if meta is None:
        meta = {"labels": {k: v for k, v in labels.items() if k == "app.kubernetes.io/part-of"},
                "annotations": {}}
    ext.patch_custom_resource_definition(crd_name, {"metadata": {
        "labels": {**{k: None for k in labels}, **meta["labels"]},
        "annotations": {**{k: None for k in annotations
                           if k != "kubectl.kubernetes.io/last-applied-configuration"},
                        **meta["annotations"]}}})


@pytest.fixture
def release(cluster) -> Iterator[tuple[str, str, list[str]]]:
    with adopted_release(cluster, "keep", "--set", "replicaCount=1") as value:
        yield value


def test_uninstall_keeps_crds_and_user_objects(cluster, release):
    name, namespace, sets = release
    api = client.CustomObjectsApi(cluster.api)
    ext = client.ApiextensionsV1Api(cluster.api)
    core = client.CoreV1Api(cluster.api)
    installed = _helm(cluster, "install", "--release", name, "--namespace", namespace,
                      "--wait", "300", *sets)
    assert installed.returncode == 0, installed.stderr[-3000:]

    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun",
        "metadata": {"name": RUN, "namespace": namespace},
        "spec": {"template": "math-solver", "resources": {"nodeSelector": NO_NODE}}})

    def read() -> dict:
        return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, RUN)

    # The chart's operator reconciles it: resolved settings and its children.
    resolved = wait_until(lambda: (read().get("status") or {}).get("resolved"), timeout=120,
                          what="status.resolved from the chart-installed operator")
    wait_until(lambda: core.read_namespaced_config_map(f"{RUN}-config", namespace), timeout=60,
               what="the run's config ConfigMap")

    uninstalled = _helm(cluster, "uninstall", "--release", name, "--namespace", namespace)
    assert uninstalled.returncode == 0, uninstalled.stderr[-3000:]

    # Everything the release installed is gone ...
    rbac = client.RbacAuthorizationV1Api(cluster.api)
    apps = client.AppsV1Api(cluster.api)
    wait_until(lambda: not apps.list_namespaced_deployment(
        namespace, label_selector=f"app.kubernetes.io/instance={name}").items,
        timeout=60, what="the operator Deployment deleted")
    assert not rbac.list_cluster_role(label_selector=f"app.kubernetes.io/instance={name}").items
    assert not rbac.list_cluster_role_binding(
        label_selector=f"app.kubernetes.io/instance={name}").items
    assert not core.list_namespaced_service_account(
        namespace, label_selector=f"app.kubernetes.io/instance={name}").items
    wait_until(lambda: not core.list_namespaced_pod(
        namespace, label_selector=f"app.kubernetes.io/instance={name}").items,
        timeout=120, what="the operator pod gone")
    helm_config = helm.Config(kubeconfig_path=cluster.kubeconfig, namespace=namespace)
    assert helm_config.list(all_states=True, name_filter=f"^{name}$") == []
    # ... but the CRDs, the TrainingRun (status intact) and its children are still there.
    kept = {c.metadata.name for c in ext.list_custom_resource_definition().items}
    assert {"trainingruns.arclight.dev", "sweeps.arclight.dev", "modeldeployments.arclight.dev",
            "creditbudgets.arclight.dev", "clusterkopfpeerings.kopf.dev",
            "kopfpeerings.kopf.dev"} <= kept
    run = read()
    assert run["status"]["resolved"] == resolved
    assert core.read_namespaced_config_map(f"{RUN}-config", namespace)
    print(cluster.kubectl("get", "crd", "-l", "app.kubernetes.io/part-of=arclight").stdout)
    print(cluster.kubectl("get", "trainingrun", RUN, "-n", namespace).stdout)

    # Reinstalling the same release adopts the kept CRDs; its operator carries on with the
    # run, and deleting the run while an operator runs removes its finalizer properly.
    again = _helm(cluster, "install", "--release", name, "--namespace", namespace,
                  "--wait", "300", *sets)
    assert again.returncode == 0, again.stderr[-3000:]
    api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, RUN)

    def gone() -> bool:
        try:
            read()
        except client.exceptions.ApiException as exc:
            return exc.status == 404
        return False

    wait_until(gone, timeout=120, what="the run deleted by the reinstalled operator")


def test_two_replicas_of_a_namespaced_install_peer(cluster):
    """replicaCount 2 with watchNamespaces: both replicas run kopf with --peering and
    --namespace, meet in the KopfPeering of the watched namespace (kopf's CRD from the chart,
    the rights from its ClusterRole), and the lower priority one pauses."""
    with adopted_release(cluster, "peer", "--set", "replicaCount=2") as (name, namespace, sets):
        peering = f"{name}-arclight"
        custom = client.CustomObjectsApi(cluster.api)
        installed = _helm(cluster, "install", "--release", name, "--namespace", namespace,
                          "--wait", "300", *sets)
        assert installed.returncode == 0, installed.stderr[-3000:]
        try:
            # kopf patches keep-alives into the object but never creates it; the operator's
            # startup is to create it (a no-op here when it already did).
            custom.create_namespaced_custom_object("kopf.dev", "v1", namespace, "kopfpeerings", {
                "apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
                "metadata": {"name": peering, "namespace": namespace}})
        except client.exceptions.ApiException as exc:
            assert exc.status == 409, exc
        pods = {p.metadata.name for p in client.CoreV1Api(cluster.api).list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/instance={name}").items}
        assert len(pods) == 2, pods

        def peers() -> dict | None:
            status = custom.get_namespaced_custom_object(
                "kopf.dev", "v1", namespace, "kopfpeerings", peering).get("status") or {}
            return status if set(status) >= pods else None

        status = wait_until(peers, timeout=120, what=f"both replicas in KopfPeering {peering}")
        print(status)
        assert len({status[p]["priority"] for p in pods}) == 2, status

        # The lower one pauses: kopf starts a mandatory peering paused and resumes only when
        # no live peer has a higher priority, so only the higher one reconciles. Shown by
        # what each replica did with a run (its own reconcile counter, through the API
        # server's pod proxy), not by a log line (the paused one may never have resumed).
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "trainingruns", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun",
            "metadata": {"name": "peered"},
            "spec": {"template": "math-solver", "hyperparameters": {"maxSteps": 1},
                     "resources": {"nodeSelector": NO_NODE_SELECTOR}}})
        wait_until(lambda: client.BatchV1Api(cluster.api).list_namespaced_job(
            namespace, label_selector="arclight.dev/owner-name=peered").items, 120,
            what="the run's Job")
        higher = max(pods, key=lambda p: status[p]["priority"])
        passes = {pod: _reconcile_passes(cluster, namespace, pod) for pod in sorted(pods)}
        assert passes[higher] > 0 and all(n == 0 for p, n in passes.items() if p != higher), (
            f"only {higher} (the higher priority) should reconcile: passes {passes}, "
            f"peers {status}")
        try:  # the operator may also have made the ClusterKopfPeering of its release
            custom.delete_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", peering)
        except client.exceptions.ApiException as exc:
            assert exc.status == 404, exc


def _reconcile_passes(cluster, namespace: str, pod: str) -> float:
    """The sum of ``arclight_reconcile_total`` on one operator pod's /metrics."""
    text = client.CoreV1Api(cluster.api).connect_get_namespaced_pod_proxy_with_path(
        f"{pod}:8000", namespace, "metrics")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("arclight_reconcile_total{"))
