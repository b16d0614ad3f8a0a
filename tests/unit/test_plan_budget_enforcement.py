"""Table tests of what a budget enforces beyond credits: concurrency limits (maxRuns,
maxGPUs), `stop`, adjustments in the spec, and a ModelDeployment's scale-ups under `hold`
(no cluster, no clock)."""
from __future__ import annotations

import dataclasses
import datetime
import json
from decimal import Decimal

import pytest
from arclight.budgets.plan import plan as plan_budget
from arclight.budgets.validation import validate_creditbudget
from arclight.core.costs import BudgetUsage, Limits, Metering, RunClaim
from arclight.core.errors import InvalidSpec
from arclight.core.facts import Capabilities, Facts
from arclight.core.plan import Observed
from arclight.metering import occupancy
from arclight.training.plan import plan as plan_run
from arclight.training.validation import validate_trainingrun

pytestmark = pytest.mark.unit
UTC = datetime.UTC
NOW = datetime.datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
DECEMBER = datetime.datetime(2026, 12, 1, tzinfo=UTC)
JANUARY = datetime.datetime(2027, 1, 1, tzinfo=UTC)


def claim(name: str, created: str, gpus: int = 0, running: bool = False) -> RunClaim:
    return RunClaim(uid=name, namespace="ns-a", name=name, created=created, gpus=gpus,
                    running=running)


# --- the walk ---------------------------------------------------------------------------------


def test_the_oldest_runs_take_the_slots_and_running_ones_keep_theirs() -> None:
    limits = Limits(max_runs=2)
    claims = [claim("new-1", "2026-12-10T10:00:00Z"), claim("old", "2026-12-09T10:00:00Z",
                                                            running=True),
              claim("new-2", "2026-12-10T11:00:00Z")]
    assert occupancy.slot(claims, claims[0], limits, "team-a").admitted
    held = occupancy.slot(claims, claims[2], limits, "team-a")
    assert not held.admitted
    assert held.message == (
        "CreditBudget team-a has 2 of spec.limits.maxRuns 2 runs in use; the run is number 1 "
        "in line and starts by itself when work ahead of it finishes (or raise the limit).")


def test_a_lowered_limit_never_stops_a_running_run() -> None:
    claims = [claim("a", "2026-12-09T10:00:00Z", running=True),
              claim("b", "2026-12-09T11:00:00Z", running=True),
              claim("c", "2026-12-10T10:00:00Z")]
    limits = Limits(max_runs=1)
    assert occupancy.slot(claims, claims[1], limits, "team-a").admitted
    assert not occupancy.slot(claims, claims[2], limits, "team-a").admitted


def test_gpus_pack_in_order_and_a_big_run_does_not_block_smaller_ones() -> None:
    limits = Limits(max_gpus=4)
    claims = [claim("running", "2026-12-09T00:00:00Z", gpus=2, running=True),
              claim("big", "2026-12-10T01:00:00Z", gpus=4),
              claim("small", "2026-12-10T02:00:00Z", gpus=2),
              claim("late", "2026-12-10T03:00:00Z", gpus=1)]
    verdicts = {c.name: occupancy.slot(claims, c, limits, "team-a") for c in claims}
    assert [n for n, v in verdicts.items() if v.admitted] == ["running", "small"]
    assert "2 of spec.limits.maxGPUs 4 GPUs (this run requests 4)" in verdicts["big"].message
    assert "number 2 in line" in verdicts["late"].message


def test_a_run_larger_than_the_limit_is_told_what_to_change() -> None:
    me = claim("huge", "2026-12-10T00:00:00Z", gpus=16)
    verdict = occupancy.slot([], me, Limits(max_gpus=8), "team-a")
    assert not verdict.admitted
    assert "more than CreditBudget team-a allows at once (spec.limits.maxGPUs 8)" in (
        verdict.message)


def test_claims_count_gpus_per_node_and_skip_finished_and_suspended_runs() -> None:
    def run(name: str, **spec) -> dict:
        return {"metadata": {"name": name, "namespace": "ns-a", "uid": name,
                             "creationTimestamp": f"2026-12-10T0{len(name)}:00:00Z"},
                "spec": spec, "status": {}}
    finished = run("done")
    finished["status"] = {"conditions": [{"type": "Succeeded", "status": "True"}]}
    runs = [run("gpu", resources={"gpu": {"type": "a100"}, "nodes": 2}),
            run("cpu"), run("paused", suspend=True), finished,
            run("elsewhere") | {"metadata": {"name": "x", "namespace": "ns-z", "uid": "x"}}]
    claims = occupancy.claims_by_budget(runs, metering(Limits(max_runs=3)))
    assert [(c.name, c.gpus) for c in claims["team-a"]] == [("cpu", 0), ("gpu", 2)]
    assert occupancy.claims_by_budget(runs, metering(Limits())) == {}


# --- TrainingRun admission ---------------------------------------------------------------------


def metering(limits: Limits | None = None, used: int = 10, enforcement: str = "hold"
             ) -> Metering:
    limits = limits or Limits()
    usage = BudgetUsage(DECEMBER, JANUARY, 1000, {"ns-a": Decimal(used) * 3600},
                        enforcement=enforcement, limits=limits)
    return Metering(enabled=True, measured_at=NOW, budgets={"team-a": usage},
                    namespace_budgets={"ns-a": ("team-a",)})


def training_run(name: str = "r", created: str = "2026-12-10T11:00:00Z") -> dict:
    return {"apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": name, "namespace": "ns-a", "uid": name, "generation": 1,
                         "creationTimestamp": created},
            "spec": {"template": "math-solver", "hyperparameters": {"maxSteps": 2}},
            "status": {}}


def run_plan(obj: dict, snapshot: Metering, others: tuple[dict, ...] = (), children=None,
             caps: Capabilities | None = None):
    claims = occupancy.claims_by_budget([obj, *others], snapshot)
    return plan_run(validate_trainingrun(obj), Observed(obj, children or {}),
                    Facts(trainer_image="img:1", now=NOW, metering=snapshot, claims=claims,
                          capabilities=caps or Capabilities()))


def conditions(result) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in result.status["conditions"]}


def test_a_run_waits_for_a_slot_and_starts_when_one_frees() -> None:
    running = training_run("ahead", "2026-12-10T09:00:00Z")
    running["status"] = {"conditions": [{"type": "Admitted", "status": "True"}]}
    me = training_run()
    held = run_plan(me, metering(Limits(max_runs=1)), (running,))
    assert held.children == []
    assert conditions(held)["Admitted"] == ("False", "ConcurrencyLimit")
    assert conditions(held)["BudgetExceeded"] == ("False", "BudgetAvailable")
    assert held.requeue_after == 10.0
    running["status"]["conditions"].append({"type": "Succeeded", "status": "True"})
    started = run_plan(me, metering(Limits(max_runs=1)), (running,))
    assert any(c.kind == "Job" for c in started.children)
    assert conditions(started)["Admitted"] == ("True", "Resolved")


def test_two_runs_created_together_never_both_take_the_last_slot() -> None:
    first, second = training_run("a", "2026-12-10T11:00:00Z"), training_run("b",
                                                                              "2026-12-10T11:00:00Z")
    snapshot = metering(Limits(max_runs=1))
    started = [any(c.kind == "Job" for c in run_plan(me, snapshot, (other,)).children)
               for me, other in ((first, second), (second, first))]
    assert started == [True, False]


def test_stop_suspends_a_running_run_and_hold_does_not() -> None:
    obj = training_run()
    first = run_plan(obj, metering())
    obj["status"] = first.status
    trainer_job = {**next(c for c in first.children if c.kind == "Job").manifest,
                   "status": {"active": 1}}
    children = {"Job": {"r-trainer-1": trainer_job}}
    stopped = run_plan(obj, metering(used=1000, enforcement="stop"), children=children)
    assert conditions(stopped)["Admitted"] == ("False", "BudgetExhausted")
    assert conditions(stopped)["Running"] == ("False", "BudgetExhausted")
    assert stopped.status["phase"] == "Suspended"
    patched = next(c for c in stopped.children if c.kind == "Job")
    assert patched.patch is not None and patched.patch["spec"]["suspend"] is True
    assert stopped.requeue_after == 30.0
    # the stopped attempt resumes from its latest checkpoint from now on
    marked = {**obj, "metadata": {**obj["metadata"], "annotations": stopped.object_patch[
        "metadata"]["annotations"]}, "status": stopped.status}
    assert marked["metadata"]["annotations"] == {"arclight.dev/interrupted-attempt": "1"}
    resumed = run_plan(marked, metering(used=10), children=children)
    config = next(c for c in resumed.children if c.kind == "ConfigMap"
                  and "resumeFrom" in json.dumps(c.manifest))
    assert '"resumeFrom": "latest"' in json.dumps(config.manifest["data"]).replace('\\"', '"')
    held = run_plan(obj, metering(used=1000, enforcement="hold"), children=children)
    assert conditions(held)["BudgetExceeded"] == ("True", "BudgetExhausted")
    assert held.status["phase"] != "Suspended"
    # a cluster without Job suspend (1.20) deletes the Job: it is not desired any more
    old = run_plan(obj, metering(used=1000, enforcement="stop"), children=children,
                   caps=Capabilities(job_suspend=False, job_ttl=False))
    assert not any(c.kind == "Job" for c in old.children)
    # once its Job is gone the stopped run stays Suspended until credits return
    gone = run_plan(marked, metering(used=1000, enforcement="stop"),
                    caps=Capabilities(job_suspend=False, job_ttl=False))
    assert gone.status["phase"] == "Suspended" and not gone.children
    assert conditions(gone)["Admitted"] == ("False", "BudgetExhausted")


# --- the budget's own status -------------------------------------------------------------------


def budget(**spec) -> dict:
    return {"apiVersion": "arclight.dev/v1alpha1", "kind": "CreditBudget",
            "metadata": {"name": "team-a", "generation": 1,
                         "creationTimestamp": "2026-11-03T08:00:00Z"},
            "spec": {"credits": 1000, **spec}, "status": {}}


def test_a_limited_budget_shows_what_runs_now() -> None:
    claims = {"team-a": (claim("a", "x", gpus=2, running=True), claim("b", "y", gpus=1))}
    obj = budget(limits={"maxRuns": 2, "maxGPUs": 4})
    result = plan_budget(validate_creditbudget(obj), Observed(obj),
                         Facts(now=NOW, metering=metering(Limits(2, 4)), claims=claims))
    assert (result.status["running"], result.status["gpusInUse"]) == (1, 2)
    plain = plan_budget(validate_creditbudget(budget()), Observed(budget()),
                        Facts(now=NOW, metering=metering()))
    assert "running" not in plain.status and "gpusInUse" not in plain.status


@pytest.mark.parametrize(("adjustments", "message"), [
    ([{"name": "t-1", "kind": "refund", "credits": -5}], "adjustments[t-1].credits"),
    ([{"name": "t-1", "credits": 5}, {"name": "t-1", "credits": 6}],
     "adjustments: duplicate name t-1"),
    ([{"name": "Bad Name", "credits": 5}], "spec.adjustments[0].name"),
])
def test_bad_adjustments_are_refused_naming_the_field(adjustments: list, message: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        validate_creditbudget(budget(adjustments=adjustments))
    assert message in str(caught.value)


def test_stop_and_limits_are_accepted() -> None:
    spec = validate_creditbudget(budget(enforcement="stop", limits={"maxRuns": 0}))
    assert (spec.enforcement, spec.limits.max_runs) == ("stop", 0)
    assert dataclasses.asdict(Limits(0, None)) == {"max_runs": 0, "max_gpus": None}


def test_webhooks_given_up_are_a_warning_condition() -> None:
    from arclight.core.costs import Notifications
    obj = budget(notify=[{"url": "https://hooks.example/budget"}])
    snapshot = metering()
    for sent, expected in [
        (Notifications(), ("False", "WebhooksDelivered")),
        (Notifications(pending=1), ("False", "WebhookRetrying")),
        (Notifications(given_up=("BudgetWarning at 75%: HTTP 500",)),
         ("True", "WebhookGivenUp")),
    ]:
        usage = dataclasses.replace(snapshot.budgets["team-a"], notifications=sent)
        result = plan_budget(validate_creditbudget(obj), Observed(obj), Facts(
            now=NOW, metering=dataclasses.replace(snapshot, budgets={"team-a": usage})))
        assert conditions(result)["NotifyFailing"] == expected
    assert "BudgetWarning at 75%: HTTP 500" in next(
        c["message"] for c in result.status["conditions"] if c["type"] == "NotifyFailing")
    assert [e.reason for e in result.events if e.warning] == ["WebhookGivenUp"]
