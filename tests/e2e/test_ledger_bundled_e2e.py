"""The chart's bundled ledger on the full local cluster: `ledger.bundled.enabled` runs Postgres
(the image `hack/images.sh postgres` built) in a StatefulSet, non-root with a read-only root
file system, its data on a claim; the chart-installed operator migrates it and meters into it,
so a CreditBudget reaches `LedgerUnavailable=False` with figures from it. An upgrade keeps the
generated password (Helm `lookup`), and `helm uninstall` keeps the claim.

The local cluster has no volume provisioner: the test makes a hostPath PersistentVolume for the
StatefulSet's claim, as hack/demo.sh does. Its operator watches only the test's namespace (its
release has its own name, so its cluster-scoped RBAC objects collide with no other release);
CreditBudgets are cluster-scoped, so while it runs it also reconciles other sessions' budgets.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube import find_condition, wait_until
from kubernetes import client

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GROUP, VERSION = "arclight.dev", "v1alpha1"
POSTGRES, CLAIM, CLASS = "arclight-postgres", "data-arclight-postgres-0", "arclight-local"
POSTGRES_UID = 65432  # the image's postgres user
DATA_ROOT = Path("/var/lib/arclight/e2e-ledger")


def _helm(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack/helm.py"), *args],
        env={**os.environ, "KUBECONFIG": cluster.kubeconfig},
        capture_output=True, text=True, timeout=420, check=False)
    print(f"$ hack/helm.py {' '.join(args)}\n{result.stdout}{result.stderr[-3000:]}")
    return result


def _volume(namespace: str, path: Path) -> client.V1PersistentVolume:
    """A hostPath volume bound to the StatefulSet's claim in ``namespace`` only."""
    return client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=f"arclight-ledger-{namespace}",
                                     labels={"arclight.dev/test": "true"}),
        spec=client.V1PersistentVolumeSpec(
            capacity={"storage": "2Gi"}, access_modes=["ReadWriteOnce"],
            persistent_volume_reclaim_policy="Retain", storage_class_name=CLASS,
            claim_ref=client.V1ObjectReference(namespace=namespace, name=CLAIM),
            host_path=client.V1HostPathVolumeSource(path=str(path), type="Directory")))


@pytest.fixture
def release(cluster) -> Iterator[tuple[str, str, list[str]]]:
    """(release, namespace, install arguments) of a chart release with the bundled ledger;
    everything it made is removed afterwards, the kept claim and the volume included."""
    core = client.CoreV1Api(cluster.api)
    token = secrets.token_hex(3)
    name, namespace = f"pg-{token}", f"e2e-pg-{token}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=namespace, labels={"arclight.dev/test": "true", "arclight.dev/e2e-ledger": namespace})))
    wait_until(lambda: core.read_namespaced_service_account("default", namespace).secrets,
               timeout=30, what="the default service account token")
    cluster.kubectl("apply", "-f", str(REPO / "crds"))  # CRDs are shared: applied, not owned
    data = DATA_ROOT / namespace
    data.mkdir(parents=True, mode=0o700)
    os.chown(data, POSTGRES_UID, POSTGRES_UID)
    volume = core.create_persistent_volume(_volume(namespace, data))
    args = ["--release", name, "--namespace", namespace, "--wait", "300",
            "--set", "image.tag=dev", "--set", "crds.install=false",
            "--set", f"watchNamespaces={{{namespace}}}",
            "--set", "trainer.image=docker.io/arclight/trainer:dev",
            "--set", "ledger.bundled.enabled=true", "--set", "ledger.bundled.image.tag=dev",
            "--set", f"ledger.bundled.storage.storageClassName={CLASS}",
            "--set", "ledger.meteringInterval=2"]
    try:
        yield name, namespace, args
    finally:
        custom = client.CustomObjectsApi(cluster.api)
        try:
            custom.delete_cluster_custom_object(GROUP, VERSION, "creditbudgets", namespace)
        except client.exceptions.ApiException as exc:
            assert exc.status == 404, exc
        _helm(cluster, "uninstall", "--release", name, "--namespace", namespace)
        core.delete_namespace(namespace)  # the kept claim with it
        wait_until(lambda: namespace not in {n.metadata.name for n in core.list_namespace().items},
                   timeout=180, what=f"namespace {namespace} deleted")
        core.delete_persistent_volume(volume.metadata.name)
        shutil.rmtree(data)


def _psql(cluster, namespace: str, sql: str) -> str:
    """A query as the superuser over the pod's socket (peer authentication)."""
    return cluster.kubectl("exec", "-n", namespace, f"{POSTGRES}-0", "--", "psql", "-qAt",
                           "-U", "postgres", "-d", "arclight", "-c", sql).stdout.strip()


def _password(core: client.CoreV1Api, namespace: str) -> str:
    secret = core.read_namespaced_secret(POSTGRES, namespace)
    return base64.b64decode(secret.data["password"]).decode()


def test_bundled_ledger_meters_a_budget(cluster, release):
    name, namespace, args = release
    core = client.CoreV1Api(cluster.api)
    custom = client.CustomObjectsApi(cluster.api)
    installed = _helm(cluster, "install", *args)
    assert installed.returncode == 0, installed.stderr[-3000:]

    # Non-root with a read-only root file system: in the spec, and in the running container.
    pod = core.read_namespaced_pod(f"{POSTGRES}-0", namespace)
    (container,) = pod.spec.containers
    assert pod.spec.security_context.run_as_non_root is True
    assert pod.spec.security_context.run_as_user == POSTGRES_UID
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.allow_privilege_escalation is False
    exec_ = ["exec", "-n", namespace, f"{POSTGRES}-0", "--", "sh", "-c"]
    assert cluster.kubectl(*exec_, "id -u").stdout.strip() == str(POSTGRES_UID)
    refused = subprocess.run(
        [str(REPO / "hack/cluster.sh"), "kubectl", "--kubeconfig", cluster.kubeconfig, *exec_,
         "touch /usr/local/x"], capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr, refused
    claim = core.read_namespaced_persistent_volume_claim(CLAIM, namespace)
    assert claim.status.phase == "Bound"

    # A budget of the test's namespace: measured from the bundled ledger.
    custom.create_cluster_custom_object(GROUP, VERSION, "creditbudgets", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CreditBudget",
        "metadata": {"name": namespace},
        "spec": {"namespaceSelector": {"matchLabels": {"arclight.dev/e2e-ledger": namespace}},
                 "period": {"type": "monthly", "resetDay": 1, "timeZone": "UTC"},
                 "credits": 100, "enforcement": "warn"}})

    def measured(after: str = "") -> dict | None:
        """The budget once a metering round newer than ``after`` reached the ledger."""
        budget = custom.get_cluster_custom_object(GROUP, VERSION, "creditbudgets", namespace)
        ledger = find_condition(budget, "LedgerUnavailable")
        active = find_condition(budget, "Active")  # True only with figures from the ledger
        if (ledger and ledger["status"] == "False" and active and active["status"] == "True"
                and budget["status"].get("lastMeteredAt", "") > after):
            return budget
        return None

    budget = wait_until(measured, timeout=180, interval=2,
                        what="the budget measured from the bundled ledger")
    print(budget["status"])
    assert budget["status"]["granted"] == 100
    assert _psql(cluster, namespace, "SELECT sum(credits) FROM credit_transactions "
                 f"WHERE budget = '{namespace}' AND kind = 'grant'") == "100"

    # An upgrade keeps the generated password: the restarted operator (its metering interval
    # changed) reaches the ledger with the Secret's DSN.
    password = _password(core, namespace)
    upgraded = _helm(cluster, "install", *args, "--set", "ledger.meteringInterval=3")
    assert upgraded.returncode == 0, upgraded.stderr[-3000:]
    assert _password(core, namespace) == password
    wait_until(lambda: measured(after=budget["status"]["lastMeteredAt"]), timeout=180,
               interval=2, what="a metering round of the upgraded operator")

    # Uninstall removes the server and keeps its claim (and so the ledger's rows).
    uninstalled = _helm(cluster, "uninstall", "--release", name, "--namespace", namespace)
    assert uninstalled.returncode == 0, uninstalled.stderr[-3000:]
    apps = client.AppsV1Api(cluster.api)
    wait_until(lambda: not apps.list_namespaced_stateful_set(namespace).items, timeout=60,
               what="the StatefulSet deleted")
    assert core.read_namespaced_persistent_volume_claim(CLAIM, namespace).status.phase == "Bound"


def test_postgres_image_archive():
    """`hack/images.sh postgres` (a reuse when its inputs are unchanged): the archive's user,
    entrypoint and stop signal, Debian's server without the JIT, the packages' checksums."""
    done = subprocess.run(["bash", str(REPO / "hack/images.sh"), "postgres", "--no-load"],
                          capture_output=True, text=True, timeout=900, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    tag, dev = done.stdout.split()
    assert dev == "docker.io/arclight/postgres:dev"
    archive = Path.home() / ".cache/arclight/images" / f"postgres-{tag.rsplit(':', 1)[1]}.tar"
    with tarfile.open(archive) as outer:
        (manifest,) = json.load(outer.extractfile("manifest.json"))
        config = json.load(outer.extractfile(manifest["Config"]))["config"]
        paths: set[str] = set()
        for layer in manifest["Layers"]:
            with tarfile.open(fileobj=outer.extractfile(layer)) as files:
                paths.update(name.removeprefix("./") for name in files.getnames())
    assert set(manifest["RepoTags"]) == {tag, dev}
    assert config["User"] == f"{POSTGRES_UID}:{POSTGRES_UID}"
    assert config["Entrypoint"] == ["arclight-postgres"] and config["StopSignal"] == "SIGINT"
    assert {"usr/lib/postgresql/15/bin/postgres", "usr/lib/postgresql/15/bin/initdb",
            "usr/local/bin/arclight-postgres", "usr/share/arclight/postgres-debs.sha256"} <= paths
    assert not any("libLLVM" in p or "/llvmjit" in p or p.startswith("tmp/debs") for p in paths)
    assert not any(p.startswith("var/lib/postgresql/15/main") for p in paths)  # no default cluster
