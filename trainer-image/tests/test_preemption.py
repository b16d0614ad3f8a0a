"""SIGTERM mid-training, as a suspended or deleted Job sends it: the real trainer checkpoints
its last completed step, stops the Agent Lightning processes and exits Preempted within the
grace period; a second attempt with resumeFrom latest continues from the step after it."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from arclight.api.trainer import ExitCode, FailureReason
from arclight_trainer.rollouts import RolloutClient, Task
from arclight_trainer.stopping import Stopped, StopSignal
from arclight_trainer.topology import AglTopology
from trainer_configs import base_config
from trainer_process import TrainerProcess

GRACE_S = 60  # what this test allows on 2 cores (trainer pods get TRAINER_GRACE_SECONDS)
START_TIMEOUT_S = 300
HYPERPARAMETERS = {"learningRate": "1e-4", "batchSize": 1, "groupSize": 4, "maxSteps": 3,
                   "maxNewTokens": 16, "klCoef": "0.02"}
STEP_LINE = re.compile(r"^step (\d+)/(\d+) .* samples=(\d+) ", re.MULTILINE)


def descendants(pid: int) -> set[int]:
    """The processes under `pid` (children, grandchildren, ...), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def config_for(directory: Path, checkpoints: Path, **overrides) -> dict:
    # everySteps 2: step 1 is saved only by the preemption, step 2 by the resumed run. The
    # cost reward varies with the reply's length, so groups have advantages and steps update.
    return base_config(directory, hyperparameters=HYPERPARAMETERS,
                       checkpoint={"everySteps": 2, "keep": 2, "dir": str(checkpoints)},
                       reward={"components": [{"name": "cost", "weight": "1",
                                               "params": {"budgetTokens": "64"}}]},
                       **overrides)


def trainer_state(checkpoints: Path, step: int) -> dict:
    return torch.load(checkpoints / f"step-{step}" / "trainer_state.pt", weights_only=False)


def optimizer_steps(state: dict) -> int:
    """Optimizer steps taken, from the per-parameter Adam state (0 before the first)."""
    counts = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert len(counts) <= 1, counts
    return counts.pop() if counts else 0


def updated_steps(output: str, upto: int = 3) -> int:
    """Steps up to `upto` whose update had samples (one without takes no optimizer step)."""
    return sum(1 for step, _, samples in STEP_LINE.findall(output)
               if int(step) <= upto and int(samples))


@pytest.fixture(scope="module")
def preempted(tmp_path_factory):
    """A 3-step run sent SIGTERM once step 1 is done; (run, seconds to exit, checkpoint dir)."""
    directory = tmp_path_factory.mktemp("preempted")
    checkpoints = directory / "artifacts"
    trainer = TrainerProcess(config_for(directory, checkpoints), directory)
    deadline = time.monotonic() + START_TIMEOUT_S
    while "step 1/3 " not in trainer.log_path.read_text(errors="replace"):
        assert trainer.proc.poll() is None and time.monotonic() < deadline, (
            trainer.log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.1)
    children = descendants(trainer.proc.pid)
    sent = time.monotonic()
    trainer.proc.send_signal(signal.SIGTERM)
    run = trainer.wait(timeout=GRACE_S)  # killed (-9) past the grace period
    seconds = time.monotonic() - sent
    print(f"SIGTERM to exit: {seconds:.1f}s")
    return run, seconds, checkpoints, children


def test_sigterm_checkpoints_and_exits_preempted_within_the_grace_period(preempted):
    run, seconds, checkpoints, children = preempted
    assert run.returncode == ExitCode.PREEMPTED, run.output[-3000:]
    assert seconds < GRACE_S
    done = int(STEP_LINE.findall(run.output)[-1][0])
    assert 1 <= done < 3 and run.report["progress"]["step"] == done
    assert run.termination["reason"] == FailureReason.PREEMPTED
    assert f"after step {done} of 3" in run.termination["message"]
    assert f"continues at step {done + 1}" in run.termination["suggestions"][0]
    assert sorted(p.name for p in checkpoints.glob("step-*")) == [f"step-{done}"]
    assert not (checkpoints / "final").exists() and "result" not in run.report
    assert run.report["bestCheckpoint"]["step"] == done
    state = trainer_state(checkpoints, done)
    assert state["step"] == done and state["scheduler"]["last_epoch"] == done
    assert optimizer_steps(state) == updated_steps(run.output)
    assert state["validation_before"] == pytest.approx(run.report["metrics"]["validationReward"],
                                                       rel=1e-3)
    assert state["evaluations"] == run.report["evaluations"]  # the baseline only
    assert [p["step"] for p in state["evaluations"]["points"]] == [0]
    # agl-server, the rollout runners and their agent processes are gone
    assert children and not [pid for pid in children if alive(pid)]


def test_resume_from_latest_continues_after_the_preemption(preempted, run_trainer, tmp_path):
    first, _, checkpoints, _ = preempted
    assert first.returncode == ExitCode.PREEMPTED, first.output[-3000:]
    done = int(STEP_LINE.findall(first.output)[-1][0])
    before = trainer_state(checkpoints, done)
    config = config_for(tmp_path, checkpoints, resumeFrom="latest",
                        run={"name": "t", "namespace": "test", "attempt": 2})
    run = run_trainer(config, timeout=START_TIMEOUT_S)
    assert run.returncode == 0, run.output[-3000:]
    assert f"resumed from {checkpoints / f'step-{done}'} at step {done}" in run.output
    steps = [int(step) for step, _, _ in STEP_LINE.findall(run.output)]
    assert steps == list(range(done + 1, 4))
    assert run.report["progress"]["step"] == 3 and run.report["progress"]["totalSteps"] == 3
    # the validation reward before training is the base model's, kept in the checkpoint
    assert "(from the checkpoint)" in run.output
    assert run.report["result"]["validationRewardBefore"] == pytest.approx(
        before["validation_before"], rel=1e-3)
    assert run.report["result"]["validationRewardAfter"] is not None
    # the baseline is kept from the preempted run (not measured again), then the final one
    points = run.report["evaluations"]["points"]
    assert [p["step"] for p in points] == [0, 3]
    assert points[0] == first.report["evaluations"]["points"][0]
    assert (checkpoints / "final" / "config.json").exists()
    # step 2 (everySteps 2) carries the optimizer and scheduler on from the preempted run
    after = trainer_state(checkpoints, 2)
    assert after["scheduler"]["last_epoch"] == 2
    assert optimizer_steps(after) == optimizer_steps(before) + updated_steps(run.output, upto=2)


def test_a_stop_request_ends_the_wait_for_rollouts(tmp_path, monkeypatch):
    """The wait for rollouts (agents that hang) leaves within a poll of the request, and
    stopping the topology kills the abandoned agents."""
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    journal, stop = tmp_path / "journal", StopSignal()
    stop.armed = True  # the training loop is running: a request is honoured at the wait

    def request_once_both_run() -> None:
        while len(journal.read_text().splitlines() if journal.exists() else []) < 2:
            time.sleep(0.05)
        stop.request()

    with AglTopology(tmp_path / "agl", policy_url="http://127.0.0.1:9/v1", train_temperature=1.0,
                     concurrency=2) as topology, topology.client() as api:
        client = RolloutClient(api, template="math-solver", components=[], max_tokens=8,
                               temperature=1.0, timeout_s=600,
                               agent_class="agents.sample_agents:Hangs", stop=stop,
                               wakeups=topology)
        requester = threading.Thread(target=request_once_both_run, daemon=True)
        requester.start()
        with pytest.raises(Stopped):
            client.run([Task(f"g{i}", {"journal": str(journal)}) for i in range(2)], train=True)
        assert stop.seconds() < 1
    agents = [int(line.split()[1]) for line in journal.read_text().splitlines()]
    assert len(agents) == 2 and not [pid for pid in agents if alive(pid)]
