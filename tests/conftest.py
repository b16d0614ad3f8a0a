"""Shared fixtures: a real cluster (`cluster`, session) and a fresh namespace per test.

`cluster` reuses the cluster KUBECONFIG points at; otherwise it runs `hack/cluster.sh up`
(control plane only, or the full cluster when an `e2e` test is selected; a no-op when it
already runs). The cluster is left running for the next session (and for anyone sharing the
machine); ARCLIGHT_CLUSTER_TEARDOWN=1 stops it at the end if this session started it.

`postgres` (session) is a throwaway Postgres server (tests/postgres.py) and `ledger_dsn` a
fresh database on it per test.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kube import wait_until
from kubernetes import client, config
from postgres import PostgresServer

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SH = REPO / "hack" / "cluster.sh"
UP_TIMEOUT_S = 1800  # a cold `up` builds Kubernetes first
STALE_AFTER_S = 3600  # a test or bench namespace this old belongs to a session that died
SETTLE_TIMEOUT_S = 1200  # a bench namespace of 3,000 runs takes minutes to delete
LEFTOVER_LABELS = ("arclight.dev/test=true", "arclight.dev/bench=true")


@dataclass(frozen=True)
class Cluster:
    kubeconfig: str
    mode: str  # "control-plane" or "full"
    api: client.ApiClient

    def kubectl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the cluster's kubectl against this cluster (raises on a non-zero exit)."""
        return subprocess.run(
            [str(CLUSTER_SH), "kubectl", "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )


def _cluster_sh(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def _mode(api: client.ApiClient) -> str:
    for node in client.CoreV1Api(api).list_node(_request_timeout=10).items:
        if any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []):
            return "full"
    return "control-plane"


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    started_here = False
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        want_full = any(item.get_closest_marker("e2e") for item in request.session.items)
        was_running = _cluster_sh("status", timeout=30).returncode == 0
        up = _cluster_sh(
            "up", *([] if want_full else ["--control-plane-only"]), timeout=UP_TIMEOUT_S
        )
        if up.returncode != 0:
            pytest.fail(f"hack/cluster.sh up failed:\n{up.stderr[-4000:]}", pytrace=False)
        kubeconfig = up.stdout.strip().splitlines()[-1]
        started_here = not was_running
    api = config.new_client_from_config(config_file=kubeconfig)
    client.VersionApi(api).get_code(_request_timeout=10)
    _settle(api)
    yield Cluster(kubeconfig=kubeconfig, mode=_mode(api), api=api)
    api.close()
    if started_here and os.environ.get("ARCLIGHT_CLUSTER_TEARDOWN") == "1":
        _cluster_sh("down", timeout=300)


def _settle(api: client.ApiClient) -> None:
    """Start from a quiet cluster: delete the test and bench namespaces a dead session left
    (older than an hour) and wait until no namespace is terminating.

    The cluster is shared with earlier sessions; a namespace of thousands of runs still being
    deleted keeps the garbage collector busy for minutes, and every test that waits for
    owner-reference cascades would time out behind it.
    """
    core = client.CoreV1Api(api)
    now = datetime.now(UTC)
    for selector in LEFTOVER_LABELS:
        for ns in core.list_namespace(label_selector=selector, _request_timeout=30).items:
            age = (now - ns.metadata.creation_timestamp).total_seconds()
            if age > STALE_AFTER_S and not ns.metadata.deletion_timestamp:
                print(f"deleting {ns.metadata.name}, left by an earlier session", file=sys.stderr)
                core.delete_namespace(ns.metadata.name, _request_timeout=30)

    def terminating() -> list[str]:
        return [ns.metadata.name for ns in core.list_namespace(_request_timeout=30).items
                if ns.status.phase == "Terminating"]

    if left := terminating():
        print(f"waiting for namespaces {left} to finish terminating", file=sys.stderr)
        wait_until(lambda: not terminating(), SETTLE_TIMEOUT_S, interval=2,
                   what="earlier sessions' namespaces to finish terminating")


@pytest.fixture(autouse=True)
def _e2e_needs_full_cluster(request: pytest.FixtureRequest) -> None:
    """Skip e2e tests when the reused cluster has no Ready node."""
    if request.node.get_closest_marker("e2e") and request.getfixturevalue("cluster").mode != "full":
        pytest.skip("e2e needs a full cluster (a Ready node); KUBECONFIG points at a control plane")


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace `t-<random>` ready for pods, deleted after the test."""
    core = client.CoreV1Api(cluster.api)
    name = f"t-{secrets.token_hex(4)}"
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"arclight.dev/test": "true"})
        )
    )
    # On 1.20, pods are refused until the token controller has given "default" its token.
    wait_until(
        lambda: core.read_namespaced_service_account("default", name).secrets,
        timeout=30,
        what=f"the token of {name}/default",
    )
    yield name
    core.delete_namespace(name, _request_timeout=30)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway Postgres server (Debian's postgresql-15), stopped and deleted at the end."""
    server = PostgresServer()
    try:
        server.start()
    except RuntimeError as exc:  # PostgresMissing says to run hack/install-deps.sh
        server.close()
        pytest.fail(f"cannot start the test Postgres server: {exc}", pytrace=False)
    yield server
    server.close()


@pytest.fixture
def ledger_dsn(postgres: PostgresServer) -> str:
    """The DSN of a fresh, empty database `t_<random>` on the `postgres` server."""
    return postgres.create_database(f"t_{secrets.token_hex(6)}")
