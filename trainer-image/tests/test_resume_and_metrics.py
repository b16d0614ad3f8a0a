"""A short real run scraped on loopback (Prometheus), then resumed from its checkpoint."""

import math
import re
import socket
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from trainer_configs import base_config
from trainer_process import TrainerProcess

SCRAPE_INTERVAL_S = 0.25
RUN_TIMEOUT_S = 400
HYPERPARAMETERS = {"learningRate": "1e-4", "batchSize": 1, "groupSize": 2, "maxNewTokens": 8,
                   "klCoef": "0.02"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scrape(port: int) -> dict[str, float] | None:
    """The trainer's gauges from /metrics on loopback (None while it does not answer)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.TransportError:
        return None
    return {s.name: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name.startswith("arclight_trainer_")}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """Two steps with a checkpoint after step 1; /metrics scraped while the trainer runs."""
    directory = tmp_path_factory.mktemp("first")
    port = free_port()
    config = base_config(directory, hyperparameters={**HYPERPARAMETERS, "maxSteps": 2},
                         checkpoint={"everySteps": 1, "keep": 2,
                                     "dir": str(directory / "artifacts")},
                         evaluation={"everySteps": 1})
    trainer = TrainerProcess(config, directory, metrics_port=port)
    scrapes = []
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while trainer.proc.poll() is None and time.monotonic() < deadline:
        sample = scrape(port)
        if sample:
            scrapes.append(sample)
        time.sleep(SCRAPE_INTERVAL_S)
    return trainer.wait(timeout=30), scrapes


def test_prometheus_endpoint_follows_the_run(first_run):
    run, scrapes = first_run
    assert run.returncode == 0, run.output[-3000:]
    assert scrapes, "the metrics endpoint never answered"
    steps = [s["arclight_trainer_step"] for s in scrapes]
    assert steps == sorted(steps) and {0.0, 1.0, 2.0} <= set(steps)
    assert all(s["arclight_trainer_total_steps"] == 2 for s in scrapes if s[
        "arclight_trainer_step"] > 0)
    last = scrapes[-1]
    assert last["arclight_trainer_reward_mean"] == pytest.approx(
        run.report["metrics"]["reward"]["mean"])
    assert last["arclight_trainer_loss"] == pytest.approx(run.report["metrics"]["loss"])
    assert math.isfinite(last["arclight_trainer_samples_per_second"])
    assert last["arclight_trainer_samples_per_second"] > 0
    validation = {round(s["arclight_trainer_validation_reward"], 4) for s in scrapes}
    assert round(run.report["result"]["validationRewardBefore"], 4) in validation


def test_evaluation_every_step_and_the_latest_in_status(first_run):
    run, _ = first_run
    assert run.returncode == 0, run.output[-3000:]
    # before, after step 1 (evaluation.everySteps: 1; the last step is followed by `after`)
    labels = re.findall(r"^validation (before|step \d+|after): ", run.output, re.MULTILINE)
    assert labels == ["before", "step 1", "after"]
    # status.metrics.validationReward is the latest evaluation: the one after training
    assert run.report["metrics"]["validationReward"] == run.report["result"][
        "validationRewardAfter"]
    # status.evaluations: every evaluation at the step it followed, the baseline at step 0
    points = run.report["evaluations"]["points"]
    assert [p["step"] for p in points] == [0, 1, 2]
    assert points[0]["validationReward"] == pytest.approx(
        run.report["result"]["validationRewardBefore"], rel=1e-3)
    assert points[-1]["validationReward"] == run.report["metrics"]["validationReward"]
    assert all(0 <= p["successRate"] <= 1 for p in points)


def test_resumed_run_continues_after_the_checkpoint(first_run, run_trainer, tmp_path):
    first, _ = first_run
    assert first.returncode == 0, first.output[-3000:]
    # Step 2 was the last step (saved as `final`), so step-1 is the only periodic checkpoint.
    assert sorted(p.name for p in first.checkpoint_dir.glob("step-*")) == ["step-1"]
    checkpoint = first.checkpoint_dir / "step-1"
    config = base_config(tmp_path, hyperparameters={**HYPERPARAMETERS, "maxSteps": 3},
                         checkpoint={"everySteps": 1, "keep": 2, "dir": str(tmp_path / "resumed")},
                         resumeFrom=checkpoint.as_uri())
    run = run_trainer(config, timeout=RUN_TIMEOUT_S)
    assert run.returncode == 0, run.output[-3000:]
    assert f"resumed from {checkpoint} at step 1" in run.output
    assert re.findall(r"^step (\d+)/(\d+) ", run.output, re.MULTILINE) == [("2", "3"),
                                                                            ("3", "3")]
    assert run.report["progress"]["step"] == 3 and run.report["progress"]["totalSteps"] == 3
    assert sorted(p.name for p in run.checkpoint_dir.glob("step-*")) == ["step-2"]
    assert run.report["result"]["validationRewardAfter"] is not None
    # the evaluations kept in step-1 (before and after step 1), then the one after step 3
    points = run.report["evaluations"]["points"]
    assert [p["step"] for p in points] == [0, 1, 3]
    assert points[:2] == first.report["evaluations"]["points"][:2]
