"""The CI-sized version of tests/bench/bench_sweep.py: 24 simulated trials at parallelism 4
driven through the real Sweep plan, with and without the median rule. Only what a user sees
is asserted (final states, the Sweep's status, trial-steps, reproducibility); no timings:
each pass is charged a fixed virtual cost so that the schedule does not depend on the
machine."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_sweep as bench

pytestmark = pytest.mark.unit

TRIALS, PARALLELISM, SEED = 24, 4, 1
PASS_SECONDS = 0.01  # virtual; the measured wall time would make the schedule vary


def simulate(early_stopping: str) -> bench.Result:
    return bench.simulate(TRIALS, PARALLELISM, SEED, early_stopping, "random",
                          pass_seconds=PASS_SECONDS)


@pytest.fixture(scope="module")
def results() -> dict[str, bench.Result]:
    return {variant: simulate(variant) for variant in ("none", "median")}


def trials_of(result: bench.Result) -> list[tuple]:
    return [(t.name, t.values, t.steps, t.state) for t in result.trials]


@pytest.mark.parametrize("variant", ["none", "median"])
def test_every_trial_ends_and_the_sweep_succeeds(results, variant):
    result = results[variant]
    assert len(result.trials) == TRIALS
    assert bench.all_finished(result), [(t.name, t.state) for t in result.trials]
    assert result.status["phase"] == "Succeeded"
    assert result.status["progress"] == f"{TRIALS}/{TRIALS}"
    assert result.status["bestObjective"] is not None
    succeeded = next(c for c in result.status["conditions"] if c["type"] == "Succeeded")
    assert succeeded["status"] == "True"


def test_without_early_stopping_every_trial_runs_every_step(results):
    none = results["none"]
    assert none.pruned == 0
    assert {t.state for t in none.trials} == {"Succeeded"}
    assert none.trial_steps == TRIALS * 20


def test_the_median_rule_prunes_and_spends_fewer_trial_steps_on_the_same_trials(results):
    none, median = results["none"], results["median"]
    assert median.pruned >= 1
    assert median.trial_steps < none.trial_steps
    # random search: the same trial numbers get the same parameters in both variants
    assert [t.values for t in median.trials] == [t.values for t in none.trials]


def test_the_same_seed_gives_the_same_trials_and_steps(results):
    again = simulate("median")
    assert trials_of(again) == trials_of(results["median"])
    assert again.status["bestTrial"] == results["median"].status["bestTrial"]
