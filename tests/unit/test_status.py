"""Conditions keep lastTransitionTime unless they flip; phase summarises conditions."""
import pytest
from arclight.core.conditions import set_condition, trainingrun_phase, transitions

pytestmark = pytest.mark.unit


def test_transition_time_changes_only_on_flip():
    conds = set_condition([], "Running", "False", "Starting", "waiting", 1, now="T1")
    assert conds[0]["lastTransitionTime"] == "T1"
    assert conds[0]["observedGeneration"] == 1
    same = set_condition(conds, "Running", "False", "Starting", "still waiting", 2, now="T2")
    assert same[0]["lastTransitionTime"] == "T1"
    assert same[0]["message"] == "still waiting" and same[0]["observedGeneration"] == 2
    flipped = set_condition(same, "Running", "True", "Training", "go", 2, now="T3")
    assert flipped[0]["lastTransitionTime"] == "T3"


def test_set_condition_keeps_others_and_rejects_bad_status():
    conds = set_condition([], "Admitted", "True", "Resolved", "ok", 1, now="T")
    conds = set_condition(conds, "Running", "False", "Starting", "", 1, now="T")
    assert [c["type"] for c in conds] == ["Admitted", "Running"]
    with pytest.raises(ValueError):
        set_condition(conds, "Running", "yes", "X", "", 1)


def test_transitions_report_status_or_reason_changes():
    before = set_condition([], "Running", "False", "Starting", "", 1, now="T")
    after = set_condition(before, "Running", "False", "Suspended", "", 1, now="T")
    after = set_condition(after, "Admitted", "True", "Resolved", "", 1, now="T")
    assert {c["type"] for c in transitions(before, after)} == {"Running", "Admitted"}
    assert transitions(after, after) == []


@pytest.mark.parametrize(("conditions", "suspended", "phase"), [
    ([], False, "Pending"),
    ([("Admitted", "True")], False, "Admitted"),
    ([("Admitted", "True"), ("Running", "True")], False, "Running"),
    ([("Admitted", "True"), ("Running", "False")], True, "Suspended"),
    ([("Running", "False"), ("Succeeded", "True")], False, "Succeeded"),
    ([("Succeeded", "False"), ("Failed", "True")], True, "Failed"),
])
def test_phase(conditions, suspended, phase):
    conds = []
    for type_, status in conditions:
        conds = set_condition(conds, type_, status, "R", "", 1)
    assert trainingrun_phase(conds, suspended) == phase


@pytest.mark.parametrize(("raw", "shown"), [
    (0.15000000000000002, 0.15), (0.35355339, 0.3536), (-0.0123456, -0.01235),
    (1234.5678, 1235.0), (0.0, 0.0), (None, None)])
def test_status_figures_keep_four_significant_digits(raw, shown):
    from arclight.api.trainingrun import RewardStats

    assert RewardStats(mean=raw).mean == shown
