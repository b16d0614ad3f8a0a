"""Metering on a real API server into a real Postgres: the ledger equals the hand computation.

The pods here are driven the way a kubelet reports them (their status written through the
status subresource: startTime, running and terminated container states with timestamps), on
a scheduler nobody runs, so no real kubelet touches them. The operator runs as a subprocess
with a ledger (``ARCLIGHT_LEDGER_DSN``) and a metering round every second.
"""
from __future__ import annotations

import datetime
import os
import random
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest
from chart_role import chart_role_kubeconfig
from conftest import OperatorProcess
from kube import find_condition, wait_until
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = [pytest.mark.controller, pytest.mark.ledger]
GROUP, VERSION = "arclight.dev", "v1alpha1"
UTC = datetime.UTC
FINALIZER = "arclight.dev/metering"


def iso(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def credits(credit_seconds: Decimal) -> int:
    """The hand computation's one rounding: credit-seconds / 3600, half up."""
    return int((credit_seconds / 3600).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def midday_zone(now: datetime.datetime) -> str:
    """A fixed-offset zone where it is about 13:00 now, so today's daily period began hours
    ago and holds every timestamp this test writes (no DST in Etc/GMT zones)."""
    offset = (13 - now.hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return "UTC" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


@dataclass
class Metered:
    """The metering operator, its ledger and two labelled namespaces."""

    core: client.CoreV1Api
    custom: client.CustomObjectsApi
    operator: OperatorProcess
    dsn: str
    team: str
    namespaces: tuple[str, str]

    def rows(self) -> dict[str, tuple[Decimal, bool, int]]:
        """Per pod name: credit-seconds, whether its final slice is written, slices."""
        with psycopg.connect(self.dsn) as conn:
            found = conn.execute(
                "SELECT pod_name, sum(credit_seconds), bool_or(final), count(*) "
                "FROM usage_events GROUP BY pod_name").fetchall()
        return {name: (Decimal(cs), final, n) for name, cs, final, n in found}

    def budget(self, name: str) -> dict:
        return self.custom.get_cluster_custom_object(GROUP, VERSION, "creditbudgets", name)

    def run(self, namespace: str, name: str) -> dict:
        return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace,
                                                        "trainingruns", name)

    def create_budget(self, name: str, credits: int, **spec) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CreditBudget",
                "metadata": {"name": name},
                "spec": {"credits": credits,
                         "namespaceSelector": {"matchLabels": {"arclight.dev/team": self.team}},
                         **spec}}
        return self.custom.create_cluster_custom_object(GROUP, VERSION, "creditbudgets", body)

    def create_run(self, namespace: str, name: str, **spec) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainingRun",
                "metadata": {"name": name},
                "spec": {"template": "math-solver", "hyperparameters": {"maxSteps": 2}, **spec}}
        return self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace,
                                                           "trainingruns", body)

    def create_pod(self, namespace: str, name: str, owner: dict, requests: dict[str, str],
                   gpus: int = 0, gpu_type: str = "none") -> None:
        resources: dict = {"requests": dict(requests)}
        if gpus:
            resources["requests"]["nvidia.com/gpu"] = str(gpus)
            resources["limits"] = {"nvidia.com/gpu": str(gpus)}
        meta = owner["metadata"]
        self.core.create_namespaced_pod(namespace, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "finalizers": [FINALIZER], "labels": {
                "arclight.dev/owner-kind": owner["kind"],
                "arclight.dev/owner-name": meta["name"],
                "arclight.dev/owner-uid": meta["uid"], "arclight.dev/gpu-type": gpu_type}},
            "spec": {"schedulerName": "arclight-test-nobody", "containers": [
                {"name": "main", "image": "docker.io/arclight/trainer:test",
                 "resources": resources}]}})

    def report(self, namespace: str, name: str, start: datetime.datetime,
               end: datetime.datetime | None = None) -> None:
        """What a kubelet writes: running since ``start``, or terminated at ``end``."""
        state = ({"running": {"startedAt": iso(start)}} if end is None else
                 {"terminated": {"exitCode": 0, "reason": "Completed",
                                 "startedAt": iso(start), "finishedAt": iso(end)}})
        self.core.patch_namespaced_pod_status(name, namespace, {"status": {
            "phase": "Running" if end is None else "Succeeded", "startTime": iso(start),
            "containerStatuses": [{"name": "main", "ready": end is None, "restartCount": 0,
                                   "image": "docker.io/arclight/trainer:test", "imageID": "",
                                   "state": state}]}})

    def pod_gone(self, namespace: str, name: str) -> bool:
        try:
            self.core.read_namespaced_pod(name, namespace)
        except ApiException as exc:
            return exc.status == 404
        return False


@pytest.fixture
def metered(cluster, crds, postgres, tmp_path) -> Iterator[Metered]:
    """The operator metering into a fresh database, as a service account holding exactly the
    chart's ClusterRole (metering needs nothing more), and two namespaces of one team."""
    with chart_role_kubeconfig(cluster) as kubeconfig:
        yield from _metered(cluster, kubeconfig, postgres, tmp_path)


def _metered(cluster, kubeconfig: str, postgres, tmp_path) -> Iterator[Metered]:
    core = client.CoreV1Api(cluster.api)
    team = secrets.token_hex(3)
    namespaces = (f"m-{team}-a", f"m-{team}-b")
    dsn = postgres.create_database(f"m_{team}")
    proc = OperatorProcess(kubeconfig, tmp_path / "kopf.log", namespaces=namespaces,
                           env={"ARCLIGHT_LEDGER_DSN": dsn, "ARCLIGHT_METERING_INTERVAL": "1"})
    proc.start()
    for name in namespaces:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
            name=name, labels={"arclight.dev/team": team})))
        wait_until(lambda name=name: core.read_namespaced_service_account("default", name)
                   .secrets, timeout=30, what=f"the token of {name}/default")
    custom = client.CustomObjectsApi(cluster.api)
    try:
        yield Metered(core, custom, proc, dsn, team, namespaces)
    finally:
        _clean_up(core, custom, proc, postgres, team, namespaces)


def _clean_up(core: client.CoreV1Api, custom: client.CustomObjectsApi, proc: OperatorProcess,
              postgres, team: str, namespaces: tuple[str, ...]) -> None:
    """Delete the namespaces while the operator still runs (it releases the pods' metering
    finalizers), then the budgets; the operator stops whatever happens."""
    try:
        if not postgres.running:
            postgres.start()
        for name in namespaces:
            core.delete_namespace(name)
        try:
            for name in namespaces:
                wait_until(lambda name=name: name not in {
                    ns.metadata.name for ns in core.list_namespace().items},
                    # real trainer pods on the full cluster stop within their grace period
                    timeout=180, what=f"namespace {name} deleted (metering finalizers released)")
        finally:  # cluster-scoped: never left behind for the next test to see
            for item in custom.list_cluster_custom_object(GROUP, VERSION,
                                                          "creditbudgets")["items"]:
                if item["metadata"]["name"].startswith(f"team-{team}"):
                    custom.delete_cluster_custom_object(GROUP, VERSION, "creditbudgets",
                                                        item["metadata"]["name"])
    finally:
        proc.stop()


def test_ledger_status_and_cost_equal_the_hand_computation(metered: Metered) -> None:
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    ns_a, ns_b = metered.namespaces
    name = f"team-{metered.team}"
    # rates given (as in the sample): the API server then defaults the rest of `rates`
    metered.create_budget(name, 1000, period={"type": "daily", "timeZone": midday_zone(now)},
                          rates={"cpuHour": 4, "gpuHour": {"a100": 35}})
    run = metered.create_run(ns_a, "r", suspend=True)
    gpu_run = metered.create_run(ns_b, "g", suspend=True)
    start = now - datetime.timedelta(seconds=4000)
    # p1: 2 cores + 3 GiB for 3,725 s = (2 x 4 + 3 x 0.5) x 3725 = 35,387.5 credit-seconds
    metered.create_pod(ns_a, "p1", run, {"cpu": "2", "memory": "3Gi"})
    metered.report(ns_a, "p1", start, start + datetime.timedelta(seconds=3725))
    # p2: 1 core + 1 GiB, running since 2,000 s ago (closed slots are written as it runs)
    metered.create_pod(ns_a, "p2", run, {"cpu": "1000m", "memory": "1024Mi"})
    p2_start = now - datetime.timedelta(seconds=2000)
    metered.report(ns_a, "p2", p2_start)
    # p3: two A100s + 0.5 core + 512 MiB for 90 s = (70 + 2 + 0.25) x 90 = 6,502.5
    metered.create_pod(ns_b, "p3", gpu_run, {"cpu": "500m", "memory": "512Mi"}, gpus=2,
                       gpu_type="a100")
    metered.report(ns_b, "p3", start, start + datetime.timedelta(seconds=90))

    rows = wait_until(lambda: (r := metered.rows()).get("p1", (0, False))[1]
                      and r.get("p3", (0, False))[1] and "p2" in r and r, timeout=60,
                      what="p1 and p3 written whole, p2 in part")
    assert rows["p1"][:2] == (Decimal("35387.5"), True)
    assert rows["p1"][2] >= 5  # cut at 15-minute slots: 3,725 s spans at least 5
    assert rows["p3"][:2] == (Decimal("6502.5"), True)
    assert rows["p2"][1] is False  # still running: only its closed slots
    # Live cost while p2 runs: the ledger's part plus what it used since, growing.
    live = wait_until(lambda: (metered.run(ns_a, "r").get("status") or {}).get("cost"),
                      timeout=30, what="status.cost of the running run")
    assert live["credits"] >= credits(Decimal("35387.5") + Decimal("4.5") * 1900)

    # p2 is deleted while it runs: the finalizer holds it until the kubelet's report of its
    # end (the moment its container stopped) is metered, then lets it go.
    metered.core.delete_namespaced_pod("p2", ns_a)
    assert not metered.pod_gone(ns_a, "p2")
    p2_end = datetime.datetime.now(UTC).replace(microsecond=0)
    metered.report(ns_a, "p2", p2_start, p2_end)
    wait_until(lambda: metered.pod_gone(ns_a, "p2"), timeout=30, what="p2 released and gone")
    p2_cs = Decimal("4.5") * int((p2_end - p2_start).total_seconds())
    assert metered.rows()["p2"][:2] == (p2_cs, True)

    run_cs = Decimal("35387.5") + p2_cs
    total = run_cs + Decimal("6502.5")

    def settled() -> dict | None:
        status = metered.budget(name).get("status") or {}
        return status if status.get("used") == credits(total) else None

    status = wait_until(settled, timeout=30, what=f"budget used = {credits(total)}")
    assert status["remaining"] == 1000 - credits(total) and status["percentUsed"] == 1
    assert {row["namespace"]: row["used"] for row in status["byNamespace"]} == {
        ns_a: credits(run_cs), ns_b: credits(Decimal("6502.5"))}
    assert find_condition(metered.budget(name), "Active")["status"] == "True"
    cost = wait_until(lambda: (c := metered.run(ns_a, "r")["status"].get("cost")) and
                      c["credits"] == credits(run_cs) and c, timeout=30, what="run cost")
    assert cost == {"gpuSeconds": 0, "credits": credits(run_cs)}
    gpu_cost = wait_until(lambda: metered.run(ns_b, "g").get("status", {}).get("cost"),
                          timeout=30, what="gpu run cost")
    assert gpu_cost == {"gpuSeconds": 180, "credits": 2}
    # Credits printer column: what `kubectl get tr` shows
    with psycopg.connect(metered.dsn) as conn:
        grants = conn.execute("SELECT kind, credits FROM credit_transactions WHERE budget = %s",
                              (name,)).fetchall()
    assert grants == [("grant", 1000)]
    assert "Forbidden" not in metered.operator.log_tail(2000)  # the chart's role was enough


def test_postgres_down_loses_nothing_and_runs_keep_reconciling(metered: Metered,
                                                               postgres) -> None:
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    ns_a, _ = metered.namespaces
    name = f"team-{metered.team}"
    metered.create_budget(name, 1000, period={"type": "daily", "timeZone": midday_zone(now)})
    run = metered.create_run(ns_a, "r", suspend=True)
    wait_until(lambda: (metered.budget(name).get("status") or {}).get("used") == 0,
               timeout=90, what="the budget measured")

    postgres.stop()
    try:
        wait_until(lambda: (c := find_condition(metered.budget(name), "LedgerUnavailable"))
                   and c["status"] == "True", timeout=90, what="LedgerUnavailable=True")
        start = now - datetime.timedelta(seconds=1000)
        metered.create_pod(ns_a, "q1", run, {"cpu": "3", "memory": "2Gi"})
        metered.report(ns_a, "q1", start, start + datetime.timedelta(seconds=601))
        metered.core.delete_namespaced_pod("q1", ns_a)
        # the run still reconciles: a spec change is observed while the ledger is down
        metered.custom.patch_namespaced_custom_object(
            GROUP, VERSION, ns_a, "trainingruns", "r",
            {"spec": {"hyperparameters": {"maxSteps": 3}}})
        wait_until(lambda: metered.run(ns_a, "r")["status"].get("observedGeneration") == 2,
                   timeout=90, what="the run reconciled while the ledger is down")
        assert not metered.pod_gone(ns_a, "q1")  # held by its finalizer, not lost
    finally:
        postgres.start()
    wait_until(lambda: metered.pod_gone(ns_a, "q1"), timeout=60, what="q1 metered and gone")
    assert metered.rows()["q1"][:2] == (Decimal(13 * 601), True)  # (3 x 4 + 2 x 0.5) x 601
    wait_until(lambda: (c := find_condition(metered.budget(name), "LedgerUnavailable"))
               and c["status"] == "False", timeout=30, what="LedgerUnavailable=False")
    wait_until(lambda: metered.budget(name)["status"].get("used") == credits(
        Decimal(13 * 601)), timeout=30, what="the budget counts q1")


def test_a_spent_budget_holds_new_runs_until_it_is_raised(metered: Metered) -> None:
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    ns_a, _ = metered.namespaces
    name = f"team-{metered.team}"
    metered.create_budget(name, 1, period={"type": "daily", "timeZone": midday_zone(now)})
    first = metered.create_run(ns_a, "first", suspend=True)
    start = now - datetime.timedelta(seconds=3600)
    metered.create_pod(ns_a, "w1", first, {"cpu": "1", "memory": "0"})  # 4 credits
    metered.report(ns_a, "w1", start, start + datetime.timedelta(seconds=3600))
    # the first pass may wait for kopf's startup and the first metering rounds
    wait_until(lambda: (c := find_condition(metered.budget(name), "Exhausted"))
               and c["status"] == "True", timeout=180, what="the budget exhausted")

    metered.create_run(ns_a, "later")
    cond = wait_until(lambda: (c := find_condition(metered.run(ns_a, "later"), "Admitted"))
                      and c["reason"] == "BudgetExhausted" and c, timeout=30,
                      what="the new run held")
    assert cond["status"] == "False"
    exceeded = find_condition(metered.run(ns_a, "later"), "BudgetExceeded")
    assert exceeded["status"] == "True"
    assert f"CreditBudget {name}: 4 of 1 credits used (400%)" in exceeded["message"]
    batch = client.BatchV1Api(metered.core.api_client)
    assert batch.list_namespaced_job(ns_a).items == []

    metered.custom.patch_cluster_custom_object(GROUP, VERSION, "creditbudgets", name,
                                               {"spec": {"credits": 100}})
    wait_until(lambda: (c := find_condition(metered.run(ns_a, "later"), "Admitted"))
               and c["status"] == "True", timeout=60, what="the run admitted once raised")
    assert [j.metadata.name for j in batch.list_namespaced_job(ns_a).items] == [
        "later-trainer-1"]
    with psycopg.connect(metered.dsn) as conn:
        grants = conn.execute("SELECT credits, key FROM credit_transactions WHERE budget = %s "
                              "ORDER BY id", (name,)).fetchall()
    assert [g[0] for g in grants] == [1, 99]  # the grant follows spec.credits, as a ledger


def test_kill_9_and_a_second_replica_count_every_second_once(metered: Metered, cluster,
                                                            tmp_path) -> None:
    """Two metering operators on one ledger, one of them killed with SIGKILL at random
    moments while pods end: every pod's ledger total is exactly its hand computation."""
    rng = random.Random(int(os.environ.get("ARCLIGHT_TEST_SEED", "0")) or None)
    second = OperatorProcess(metered.operator.kubeconfig, tmp_path / "second.log",
                             namespaces=metered.namespaces, env=metered.operator.extra_env)
    second.start()
    try:
        now = datetime.datetime.now(UTC).replace(microsecond=0)
        ns_a = metered.namespaces[0]
        run = metered.create_run(ns_a, "r", suspend=True)
        expected: dict[str, Decimal] = {}
        for i in range(8):
            name, cores = f"k{i}", rng.randint(1, 4)
            start = now - datetime.timedelta(seconds=rng.randint(60, 7000))
            metered.create_pod(ns_a, name, run, {"cpu": str(cores), "memory": "1Gi"})
            if rng.random() < 0.5:  # a kubelet reports it running; its end comes later
                metered.report(ns_a, name, start)
            time.sleep(rng.uniform(0, 1.5))
            if rng.random() < 0.5:
                metered.operator.kill()
                time.sleep(rng.uniform(0, 1))
                metered.operator.start(wait=False)
            # its end, from any time since its start: a kubelet reporting it late, after
            # whole slots were written while it looked running, is corrected too
            end = start + datetime.timedelta(seconds=rng.randint(
                0, int((datetime.datetime.now(UTC) - start).total_seconds())))
            metered.report(ns_a, name, start, end)
            expected[name] = (Decimal(4 * cores) + Decimal("0.5")) * int(
                (end - start).total_seconds())
        metered.operator.kill()
        metered.operator.start()
        rows = wait_until(lambda: (r := metered.rows()) and all(
            r.get(n, (0, False))[1] for n in expected) and r, timeout=60,
            what="every pod's final slice written")
        assert {n: rows[n][0] for n in expected} == expected
    finally:
        second.stop()
