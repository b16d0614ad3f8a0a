"""Table tests of the CreditBudget plan and of the budget's say on a TrainingRun's admission:
a metering snapshot in, status, conditions and Events out (no cluster, no clock)."""
from __future__ import annotations

import dataclasses
import datetime
from decimal import Decimal

import pytest
from arclight.budgets.plan import on_error, plan
from arclight.budgets.validation import validate_creditbudget
from arclight.core.costs import BudgetUsage, Metering, OwnerCost
from arclight.core.errors import InvalidSpec
from arclight.core.facts import Facts
from arclight.core.plan import Observed
from arclight.training.plan import plan as plan_run
from arclight.training.validation import validate_trainingrun

pytestmark = pytest.mark.unit
UTC = datetime.UTC
NOW = datetime.datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
DECEMBER = datetime.datetime(2026, 12, 1, tzinfo=UTC)
JANUARY = datetime.datetime(2027, 1, 1, tzinfo=UTC)


def budget(status: dict | None = None, **spec) -> dict:
    return {"apiVersion": "arclight.dev/v1alpha1", "kind": "CreditBudget",
            "metadata": {"name": "team-a", "generation": 2,
                         "creationTimestamp": "2026-11-03T08:00:00Z"},
            "spec": {"credits": 1000, **spec}, "status": status or {}}


def snapshot(used_credits: str | int, granted: int = 1000, **kwargs) -> Metering:
    usage = BudgetUsage(DECEMBER, JANUARY, granted,
                        {"ns-a": Decimal(used_credits) * 3600 * 3 / 4,
                         "ns-b": Decimal(used_credits) * 3600 / 4})
    defaults = {"enabled": True, "measured_at": NOW, "budgets": {"team-a": usage},
                "namespace_budgets": {"ns-a": ("team-a",), "ns-b": ("team-a",)}}
    return Metering(**{**defaults, **kwargs})


def run_pass(obj: dict, metering: Metering):
    return plan(validate_creditbudget(obj), Observed(obj), Facts(now=NOW, metering=metering))


def conditions(result) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in result.status["conditions"]}


def test_figures_of_a_measured_period() -> None:
    result = run_pass(budget(), snapshot(300))
    status = result.status
    assert (status["periodStart"], status["periodEnd"]) == ("2026-12-01T00:00:00Z",
                                                           "2027-01-01T00:00:00Z")
    assert (status["granted"], status["used"], status["remaining"], status["percentUsed"]) == (
        1000, 300, 700, 30)
    # 300 credits in 9.5 of 31 days: 978.9 at the end of the month at this rate.
    assert status["projectedAtPeriodEnd"] == 979
    assert status["byNamespace"] == [{"namespace": "ns-a", "used": 225},
                                     {"namespace": "ns-b", "used": 75}]
    assert status["lastMeteredAt"] == "2026-12-10T12:00:00Z"
    assert conditions(result) == {"Active": ("True", "WithinBudget"),
                                  "Exhausted": ("False", "WithinBudget"),
                                  "LedgerUnavailable": ("False", "LedgerAvailable"),
                                  "Overlapping": ("False", "NoOverlap"),
                                  "Warning": ("False", "WithinBudget")}
    assert result.events == []
    assert status["observedGeneration"] == 2
    # the next pass at the latest when the period ends (the meter queues it sooner)
    assert result.requeue_after == 300.0


def test_each_alert_is_raised_once_per_period() -> None:
    obj = budget()
    first = run_pass(obj, snapshot(910))
    assert [(e.reason, e.warning) for e in first.events] == [("BudgetWarning", True)] * 2
    assert "past the 90% alert" in first.events[1].message
    assert first.status["alertsRaised"] == [75, 90]
    assert conditions(first)["Warning"] == ("True", "ThresholdCrossed")
    obj["status"] = first.status
    again = run_pass(obj, snapshot(920))
    assert again.events == []
    obj["status"] = again.status
    spent = run_pass(obj, snapshot(1000))
    assert [e.reason for e in spent.events] == ["BudgetExhausted"]
    assert conditions(spent)["Exhausted"] == ("True", "CreditsExhausted")
    assert "new TrainingRuns and scale-ups wait until credits return" in next(
        c["message"] for c in spent.status["conditions"] if c["type"] == "Exhausted")
    # a new period: nothing raised yet, the alerts can fire again
    obj["status"] = spent.status
    later = dataclasses.replace(
        snapshot(800), budgets={"team-a": BudgetUsage(JANUARY, datetime.datetime(
            2027, 2, 1, tzinfo=UTC), 1000, {"ns-a": Decimal(800 * 3600)})})
    january = plan(validate_creditbudget(obj), Observed(obj), Facts(
        now=JANUARY + datetime.timedelta(days=2), metering=later))
    assert january.status["alertsRaised"] == [75]
    assert [e.reason for e in january.events] == ["BudgetWarning"]


def test_usage_is_rounded_once_half_up() -> None:
    # 299.5 credits: exactly half, so 300 (one rounding of the exact sum, not per slice)
    result = run_pass(budget(), snapshot("299.5"))
    assert result.status["used"] == 300


def test_ledger_down_keeps_the_last_figures_and_says_so() -> None:
    down = snapshot(300, error="connection refused (127.0.0.1:5432)")
    result = run_pass(budget(), down)
    assert result.status["used"] == 300
    cond = next(c for c in result.status["conditions"] if c["type"] == "LedgerUnavailable")
    assert (cond["status"], cond["reason"]) == ("True", "LedgerUnavailable")
    assert "figures are from 2026-12-10T12:00:00Z" in cond["message"]
    assert [e.reason for e in result.events] == ["LedgerUnavailable"]


def test_without_a_ledger_the_budget_says_it_is_not_metered() -> None:
    result = run_pass(budget(status={"used": 5}), Metering())
    assert conditions(result) == {"Active": ("False", "MeteringDisabled")}
    assert "used" not in result.status and "remaining" not in result.status


def test_a_period_not_measured_yet_reports_no_figures() -> None:
    stale = dataclasses.replace(snapshot(300), budgets={})
    result = run_pass(budget(), stale)
    assert conditions(result)["Active"] == ("Unknown", "Measuring")
    assert "used" not in result.status
    assert result.status["periodStart"] == "2026-12-01T00:00:00Z"
    assert result.requeue_after == 5.0


def test_overlapping_budgets_are_named() -> None:
    both = dataclasses.replace(snapshot(10), namespace_budgets={
        "ns-a": ("team-a", "team-b"), "ns-b": ("team-a",)})
    cond = next(c for c in run_pass(budget(), both).status["conditions"]
                if c["type"] == "Overlapping")
    assert cond["status"] == "True" and "ns-a" in cond["message"] and "team-b" in cond[
        "message"]


@pytest.mark.parametrize(("spec", "field"), [
    ({"period": {"timeZone": "Mars/Olympus"}}, "spec.period.timeZone"),
    ({"period": {"type": "weekly", "resetDay": 9}}, "spec.period.resetDay"),
])
def test_what_is_not_honoured_yet_is_refused_naming_the_field(spec: dict, field: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        validate_creditbudget(budget(**spec))
    assert str(caught.value).startswith(field)
    result = on_error(Observed(budget(**spec)), caught.value, Facts(now=NOW))
    assert conditions(result) == {"Active": ("False", "InvalidSpec")}
    assert [e.warning for e in result.events] == [True]


# --- the budget's say on a TrainingRun -------------------------------------------------------


def training_run(**spec) -> dict:
    return {"apiVersion": "arclight.dev/v1alpha1", "kind": "TrainingRun",
            "metadata": {"name": "r", "namespace": "ns-a", "uid": "u-1", "generation": 1},
            "spec": {"template": "math-solver", "hyperparameters": {"maxSteps": 2}, **spec},
            "status": {}}


def run_plan(obj: dict, metering: Metering):
    return plan_run(validate_trainingrun(obj), Observed(obj),
                    Facts(trainer_image="img:1", now=NOW, metering=metering))


def test_a_spent_budget_holds_a_new_run_with_the_numbers() -> None:
    result = run_plan(training_run(), snapshot(1000))
    assert result.children == []
    cond = {c["type"]: c for c in result.status["conditions"]}
    assert (cond["Admitted"]["status"], cond["Admitted"]["reason"]) == ("False",
                                                                         "BudgetExhausted")
    assert cond["BudgetExceeded"]["status"] == "True"
    assert ("CreditBudget team-a: 1000 of 1000 credits used (100%)"
            in cond["BudgetExceeded"]["message"])
    assert "2027-01-01T00:00:00Z" in cond["BudgetExceeded"]["message"]
    assert result.status["phase"] == "Pending"
    assert result.requeue_after == 30.0
    assert any(e.reason == "BudgetExhausted" and e.warning for e in result.events)


def test_a_raised_budget_lets_the_held_run_start() -> None:
    obj = training_run()
    obj["status"] = run_plan(obj, snapshot(1000)).status
    raised = run_plan(obj, snapshot(1000, granted=1500))
    assert {c.kind for c in raised.children} >= {"Job", "ConfigMap"}
    cond = {c["type"]: c for c in raised.status["conditions"]}
    assert (cond["BudgetExceeded"]["status"], cond["BudgetExceeded"]["reason"]) == (
        "False", "BudgetAvailable")
    assert cond["Admitted"]["status"] == "True"


def test_warn_enforcement_and_unmeasured_budgets_hold_nothing() -> None:
    warn = snapshot(1000)
    warn = dataclasses.replace(warn, budgets={"team-a": dataclasses.replace(
        warn.budgets["team-a"], enforcement="warn")})
    assert any(c.kind == "Job" for c in run_plan(training_run(), warn).children)
    unmeasured = dataclasses.replace(snapshot(1000), budgets={})
    assert any(c.kind == "Job" for c in run_plan(training_run(), unmeasured).children)


def test_two_budgets_on_one_namespace_hold_the_run_until_it_names_one() -> None:
    both = dataclasses.replace(snapshot(10), namespace_budgets={"ns-a": ("team-a", "team-b")})
    held = run_plan(training_run(), both)
    cond = {c["type"]: c for c in held.status["conditions"]}
    assert cond["Admitted"]["reason"] == "BudgetConflict"
    assert "spec.budgetRef" in cond["Admitted"]["message"]
    named = training_run(budgetRef="team-a")
    from arclight.core.plan import ObjectRef
    observed = Observed(named, refs={ObjectRef("arclight.dev/v1alpha1", "CreditBudget",
                                               "team-a"): budget()})
    started = plan_run(validate_trainingrun(named), observed,
                       Facts(trainer_image="img:1", now=NOW, metering=both))
    assert any(c.kind == "Job" for c in started.children)


def test_cost_is_the_meters_figure_rounded_once() -> None:
    costly = dataclasses.replace(snapshot(10), owners={
        "u-1": OwnerCost(Decimal("5401.8"), 90)})
    result = run_plan(training_run(), costly)
    assert result.status["cost"] == {"gpuSeconds": 90, "credits": 2}


def test_metered_pods_carry_the_finalizer_and_labels() -> None:
    job = next(c for c in run_plan(training_run(), snapshot(10)).children if c.kind == "Job")
    meta = job.manifest["spec"]["template"]["metadata"]
    assert meta["finalizers"] == ["arclight.dev/metering"]
    assert meta["labels"]["arclight.dev/owner-uid"] == "u-1"
    assert meta["labels"]["arclight.dev/gpu-type"] == "none"
    unmetered = next(c for c in run_plan(training_run(), Metering()).children
                     if c.kind == "Job")
    assert "finalizers" not in unmetered.manifest["spec"]["template"]["metadata"]
