"""Artifact storage on a real API server into a real Postgres: the ledger equals the hand
computation, and a claim deleted while Postgres is down is held until its usage is written.

The claims here are never bound (no provisioner): storage is metered by the size a claim
requests, from its ``creationTimestamp`` to its ``deletionTimestamp``. The budget's rate,
73,000 credits per GiB-month, is 100 credits per GiB-hour (73,000 / 730 divides exactly):
a 36 GiB claim costs 3,600 credit-seconds, one credit, per second.
"""
from __future__ import annotations

import datetime
import time
from collections.abc import Iterator
from decimal import Decimal

import psycopg
import pytest
from chart_role import chart_role_kubeconfig
from kube import find_condition, wait_until
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from test_metering import FINALIZER, Metered, _metered, credits, midday_zone

pytestmark = [pytest.mark.controller, pytest.mark.ledger]
UTC = datetime.UTC
GIB = 2**30
PER_GIB_SECOND = 100  # credit-seconds per GiB and second at 100 credits per GiB-hour


@pytest.fixture
def metered(cluster, crds, postgres, tmp_path) -> Iterator[Metered]:
    """The metering operator (chart role only) with the artifacts claim ``artifacts``."""
    with chart_role_kubeconfig(cluster) as kubeconfig:
        for found in _metered(cluster, kubeconfig, postgres, tmp_path):
            found.operator.stop()
            found.operator.extra_env["ARCLIGHT_ARTIFACTS_CLAIM"] = "artifacts"
            found.operator.start()
            yield found


def create_claim(metered: Metered, namespace: str, name: str, size: str) -> datetime.datetime:
    """Create an unbound claim; its creationTimestamp."""
    made = metered.core.create_namespaced_persistent_volume_claim(namespace, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "arclight-test-none",
                 "resources": {"requests": {"storage": size}}}})
    return made.metadata.creation_timestamp


def delete_claim(metered: Metered, namespace: str, name: str) -> datetime.datetime:
    """Delete a claim the metering finalizer holds; its deletionTimestamp."""
    held = metered.core.delete_namespaced_persistent_volume_claim(name, namespace)
    assert held.metadata.deletion_timestamp is not None
    return held.metadata.deletion_timestamp


def claim(metered: Metered, namespace: str, name: str) -> client.V1PersistentVolumeClaim | None:
    try:
        return metered.core.read_namespaced_persistent_volume_claim(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def claim_rows(metered: Metered) -> dict[str, tuple]:
    """Per claim name: owner kind, credit-seconds, seconds, largest storage bytes, final."""
    with psycopg.connect(metered.dsn) as conn:
        found = conn.execute(
            "SELECT pod_name, owner_kind, sum(credit_seconds), sum(seconds),"
            " max(storage_bytes), bool_or(final) FROM usage_events"
            " WHERE owner_kind = 'PersistentVolumeClaim' GROUP BY 1, 2").fetchall()
    return {name: (kind, Decimal(cs), int(s), int(size), final)
            for name, kind, cs, s, size, final in found}


def test_claims_are_metered_exactly_and_held_while_postgres_is_down(metered: Metered,
                                                                    postgres) -> None:
    ns_a, ns_b = metered.namespaces
    name = f"team-{metered.team}"
    now = datetime.datetime.now(UTC)
    metered.create_budget(name, 100_000, period={"type": "daily", "timeZone": midday_zone(now)},
                          rates={"storageGiBMonth": 73000})
    metered.create_run(ns_b, "r", suspend=True, checkpoint={"uri": "pvc://ckpt/runs/r"})
    artifacts_born = create_claim(metered, ns_a, "artifacts", "36Gi")  # the artifacts claim
    ckpt_born = create_claim(metered, ns_b, "ckpt", "18Gi")  # a TrainingRun's checkpoints
    create_claim(metered, ns_a, "scratch", "5Gi")  # holds no artifacts: not metered
    for namespace, claim_name in ((ns_a, "artifacts"), (ns_b, "ckpt")):
        wait_until(lambda ns=namespace, n=claim_name: FINALIZER in (
            claim(metered, ns, n).metadata.finalizers or []), timeout=60,
            what=f"{claim_name} held by the metering finalizer")
    # while they exist: the budget counts them live (no slice is over yet)
    wait_until(lambda: (metered.budget(name).get("status") or {}).get("used", 0) >= 5,
               timeout=60, what="the live storage counted")

    ckpt_gone = delete_claim(metered, ns_b, "ckpt")
    wait_until(lambda: claim(metered, ns_b, "ckpt") is None, timeout=30, what="ckpt released")
    ckpt_seconds = int((ckpt_gone - ckpt_born).total_seconds())
    ckpt_cs = Decimal(PER_GIB_SECOND * 18 * ckpt_seconds)  # a credit every 2 s
    assert claim_rows(metered)["ckpt"] == ("PersistentVolumeClaim", ckpt_cs, ckpt_seconds,
                                           18 * GIB, True)

    postgres.stop()
    try:
        wait_until(lambda: (c := find_condition(metered.budget(name), "LedgerUnavailable"))
                   and c["status"] == "True", timeout=90, what="LedgerUnavailable=True")
        artifacts_gone = delete_claim(metered, ns_a, "artifacts")
        time.sleep(5)  # several metering rounds
        assert claim(metered, ns_a, "artifacts") is not None  # held, not lost
    finally:
        postgres.start()
    wait_until(lambda: claim(metered, ns_a, "artifacts") is None, timeout=60,
               what="artifacts metered and released")
    artifacts_seconds = int((artifacts_gone - artifacts_born).total_seconds())
    artifacts_cs = Decimal(PER_GIB_SECOND * 36 * artifacts_seconds)  # one credit a second
    rows = claim_rows(metered)
    assert rows["artifacts"] == ("PersistentVolumeClaim", artifacts_cs, artifacts_seconds,
                                 36 * GIB, True)
    assert set(rows) == {"artifacts", "ckpt"}  # scratch is not metered
    assert FINALIZER not in (claim(metered, ns_a, "scratch").metadata.finalizers or [])

    def settled() -> dict | None:
        status = metered.budget(name).get("status") or {}
        return status if status.get("used") == credits(artifacts_cs + ckpt_cs) else None

    status = wait_until(settled, timeout=30,
                        what=f"budget used = {credits(artifacts_cs + ckpt_cs)}")
    assert credits(artifacts_cs) == artifacts_seconds
    assert {row["namespace"]: row["used"] for row in status["byNamespace"]} == {
        ns_a: artifacts_seconds, ns_b: credits(ckpt_cs)}
    assert 'kind="PersistentVolumeClaim"' in metered.operator.metrics()
    assert "Forbidden" not in metered.operator.log_tail(2000)  # the chart's role was enough
