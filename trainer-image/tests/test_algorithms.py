"""Algorithms a backend does not implement fail fast with ConfigInvalid (exit 6)."""

import time

import pytest
from arclight_trainer.backends import ALGORITHMS, check_algorithm
from arclight_trainer.failures import TrainerFailure
from trainer_configs import base_config


@pytest.mark.unit
@pytest.mark.parametrize("backend,algorithm", [("cpu", "grpo"), ("verl", "grpo"),
                                               ("verl", "ppo")])
def test_implemented_algorithms_pass(backend, algorithm):
    check_algorithm(backend, algorithm)
    assert algorithm in ALGORITHMS[backend]


@pytest.mark.unit
def test_ppo_on_cpu_points_to_the_gpu_backend():
    with pytest.raises(TrainerFailure) as failed:
        check_algorithm("cpu", "ppo")
    assert failed.value.exit_code == 6 and failed.value.reason == "ConfigInvalid"
    assert "'ppo'" in failed.value.message and "'cpu'" in failed.value.message
    assert any("verl" in hint for hint in failed.value.suggestions)


@pytest.mark.parametrize("algorithm", ["sft", "apo"])
def test_trainer_exits_config_invalid_before_any_work(run_trainer, tmp_path, algorithm):
    started = time.monotonic()
    run = run_trainer(base_config(tmp_path, algorithm=algorithm), timeout=120)
    assert run.returncode == 6, run.output[-3000:]
    assert run.termination["reason"] == "ConfigInvalid"
    assert f"algorithm {algorithm!r} is not implemented by backend 'cpu'" in (
        run.termination["message"])
    assert "grpo" in run.termination["suggestions"][0]
    assert run.report == {} and not run.checkpoint_dir.exists()
    assert time.monotonic() - started < 60  # no model load, no Agent Lightning processes
