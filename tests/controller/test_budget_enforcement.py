"""A budget's enforcement on the real API server: `stop` suspends running work and an
adjustment in the spec brings it back; `limits.maxRuns` keeps a second run waiting until the
first finishes. The operator meters into a real Postgres, as the chart's role."""
from __future__ import annotations

import datetime
from collections.abc import Iterator

import psycopg
import pytest
from chart_role import chart_role_kubeconfig
from kube import find_condition, wait_until
from kubernetes import client
from test_metering import GROUP, VERSION, Metered, _metered, midday_zone

pytestmark = [pytest.mark.controller, pytest.mark.ledger]
UTC = datetime.UTC


@pytest.fixture
def metered(cluster, crds, postgres, tmp_path) -> Iterator[Metered]:
    """The metering operator as the chart's role, as in test_metering."""
    with chart_role_kubeconfig(cluster) as kubeconfig:
        yield from _metered(cluster, kubeconfig, postgres, tmp_path)


def jobs(metered: Metered, namespace: str) -> list[str]:
    batch = client.BatchV1Api(metered.core.api_client)
    return sorted(j.metadata.name for j in batch.list_namespaced_job(namespace).items)


def admitted(metered: Metered, namespace: str, run: str) -> dict | None:
    return find_condition(metered.run(namespace, run), "Admitted")


def test_stop_suspends_a_running_run_and_an_adjustment_resumes_it(metered: Metered) -> None:
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    ns_a, _ = metered.namespaces
    name = f"team-{metered.team}"
    metered.create_budget(name, 2, enforcement="stop",
                          period={"type": "daily", "timeZone": midday_zone(now)})
    metered.create_run(ns_a, "trainer")
    # the first pass may wait for kopf's startup (a minute when it backs off)
    wait_until(lambda: jobs(metered, ns_a) == ["trainer-trainer-1"], timeout=150,
               what="the run started while credits are left")

    payer = metered.create_run(ns_a, "payer", suspend=True)
    start = now - datetime.timedelta(seconds=3600)
    metered.create_pod(ns_a, "w1", payer, {"cpu": "1", "memory": "0"})  # 4 credits
    metered.report(ns_a, "w1", start, start + datetime.timedelta(seconds=3600))
    cond = wait_until(lambda: (c := admitted(metered, ns_a, "trainer"))
                      and c["reason"] == "BudgetExhausted" and c, timeout=180,
                      what="the running run stopped")
    assert cond["status"] == "False"
    assert f"CreditBudget {name}: 4 of 2 credits used (200%)" in cond["message"]
    # Kubernetes 1.20 cannot suspend a Job: the trainer's Job is deleted (its pods get
    # SIGTERM and checkpoint) and recreated on resume
    wait_until(lambda: jobs(metered, ns_a) == [], timeout=60, what="the trainer Job removed")
    wait_until(lambda: metered.run(ns_a, "trainer")["status"].get("phase") == "Suspended",
               timeout=30, what="the stopped run Suspended")
    exhausted = find_condition(metered.budget(name), "Exhausted")
    assert "running TrainingRuns are suspended after a checkpoint" in exhausted["message"]

    bonus = [{"name": "ticket-42", "kind": "bonus", "credits": 100, "reason": "outage"}]
    metered.custom.patch_cluster_custom_object(GROUP, VERSION, "creditbudgets", name,
                                               {"spec": {"adjustments": bonus}})
    wait_until(lambda: (c := admitted(metered, ns_a, "trainer")) and c["status"] == "True",
               timeout=90, what="the run resumed once credits returned")
    assert jobs(metered, ns_a) == ["trainer-trainer-1"]
    wait_until(lambda: metered.budget(name)["status"].get("granted") == 102, timeout=30,
               what="the bonus in the budget's grant")
    with psycopg.connect(metered.dsn) as conn:
        rows = conn.execute("SELECT kind, credits, key, note FROM credit_transactions "
                            "WHERE budget = %s AND kind = 'bonus'", (name,)).fetchall()
    assert rows == [("bonus", 100, "ticket-42", "outage")]


def test_max_runs_keeps_the_second_run_waiting_until_the_first_finishes(
        metered: Metered) -> None:
    ns_a, ns_b = metered.namespaces
    name = f"team-{metered.team}"
    metered.create_budget(name, 1000, limits={"maxRuns": 1})
    wait_until(lambda: (metered.budget(name).get("status") or {}).get("running") == 0,
               timeout=120, what="the budget measured with its limits")
    metered.create_run(ns_a, "first")
    wait_until(lambda: jobs(metered, ns_a) == ["first-trainer-1"], timeout=120,
               what="the first run started")
    metered.create_run(ns_b, "second")
    cond = wait_until(lambda: (c := admitted(metered, ns_b, "second"))
                      and c["reason"] == "ConcurrencyLimit" and c, timeout=60,
                      what="the second run waiting for a slot")
    assert cond["status"] == "False"
    assert (f"CreditBudget {name} has 1 of spec.limits.maxRuns 1 runs in use; the run is "
            "number 1 in line") in cond["message"]
    assert jobs(metered, ns_b) == []
    wait_until(lambda: metered.budget(name)["status"].get("running") == 1, timeout=60,
               what="the budget counting the running run")

    batch = client.BatchV1Api(metered.core.api_client)
    stamp = datetime.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    batch.patch_namespaced_job_status("first-trainer-1", ns_a, {"status": {
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": stamp,
                        "lastProbeTime": stamp}], "succeeded": 1, "completionTime": stamp,
        "startTime": stamp}})
    wait_until(lambda: jobs(metered, ns_b) == ["second-trainer-1"], timeout=60,
               what="the second run started once the first finished")
    wait_until(lambda: admitted(metered, ns_b, "second")["status"] == "True", timeout=30,
               what="the second run admitted (its status follows the Job)")
