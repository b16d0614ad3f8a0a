"""The pure parts of preemption: SIGTERM as a stop request, the sampler put back to a step
boundary, and `resumeFrom latest` with and without a checkpoint."""

from __future__ import annotations

import os
import signal

import pytest
from arclight.api.trainer import RESUME_LATEST, ExitCode, FailureReason
from arclight_trainer.backends.cpu import ItemSampler
from arclight_trainer.checkpoints import STATE_FILE, resolve_resume
from arclight_trainer.failures import TrainerFailure
from arclight_trainer.stopping import Stopped, StopSignal

pytestmark = pytest.mark.unit


def test_sigterm_before_training_began_ends_the_run_at_once():
    stop = StopSignal()
    with stop.on_sigterm(), pytest.raises(TrainerFailure) as caught:
        os.kill(os.getpid(), signal.SIGTERM)  # while loading the model, say
        signal.pause()  # never reached: the handler raises
    assert caught.value.reason == FailureReason.PREEMPTED
    assert "nothing to checkpoint" in caught.value.message


def test_sigterm_is_a_stop_request_inside_on_sigterm_only():
    stop = StopSignal()
    stop.armed = True
    stop.check()  # nothing requested yet
    assert stop.seconds() == 0
    previous = signal.getsignal(signal.SIGTERM)
    with stop.on_sigterm():
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before the next bytecode
        with pytest.raises(Stopped):
            stop.check()
    assert signal.getsignal(signal.SIGTERM) is previous
    first = stop.requested_at
    stop.request()  # a second request keeps the time of the first
    assert stop.requested_at == first and stop.seconds() > 0


def test_the_sampler_goes_back_to_the_step_boundary():
    sampler = ItemSampler(5, seed=3)
    sampler.take(4)
    boundary = sampler.state()
    taken = sampler.take(3)  # crosses into the second epoch
    assert sampler.epoch == 2
    sampler.restore(boundary)
    assert sampler.epoch == 1 and sampler.take(3) == taken
    again = ItemSampler(5, seed=99)
    again.restore(boundary)  # as a resumed run does from the checkpoint
    assert again.take(6) == ItemSampler(5, seed=3).take(10)[4:]


def test_resume_latest_is_the_newest_checkpoint_or_a_fresh_start(tmp_path):
    assert resolve_resume(RESUME_LATEST, tmp_path / "none") is None
    for step in (2, 10):
        (tmp_path / f"step-{step}").mkdir()
        (tmp_path / f"step-{step}" / STATE_FILE).write_bytes(b"")
    (tmp_path / ".step-11.partial").mkdir()  # an interrupted save is no checkpoint
    (tmp_path / "step-12").mkdir()  # nor is a directory without its trainer state
    assert resolve_resume(RESUME_LATEST, tmp_path) == tmp_path / "step-10"
    assert resolve_resume((tmp_path / "step-2").as_uri(), tmp_path) == tmp_path / "step-2"
    with pytest.raises(FileNotFoundError):
        resolve_resume(str(tmp_path / "step-12"), tmp_path)


def test_preempted_is_an_outcome_of_its_own():
    failure = TrainerFailure(FailureReason.PREEMPTED, "stopped by SIGTERM after step 1 of 3")
    assert failure.exit_code is ExitCode.PREEMPTED
    assert failure.exit_code not in (ExitCode.SUCCEEDED, ExitCode.ERROR, ExitCode.KILLED)
    assert failure.report().reason == "Preempted"
