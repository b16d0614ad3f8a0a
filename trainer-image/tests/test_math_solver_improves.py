"""Real RL on CPU: math-solver trained from the bundled data improves on held-out items."""

import re

import pytest

from transformers import AutoModelForCausalLM

from trainer_configs import base_config


def test_math_solver_validation_reward_improves(run_trainer, tmp_path):
    config = base_config(
        tmp_path,
        dataset={"uri": "sample://math-solver", "validationFraction": "0.05"},
        hyperparameters={"learningRate": "3e-4", "batchSize": 4, "groupSize": 4, "maxSteps": 5,
                         "maxNewTokens": 24, "klCoef": "0.01", "temperature": "1.0",
                         "scheduler": "constant", "optimizer": "adamw"},
        checkpoint={"everySteps": 2, "keep": 1, "dir": str(tmp_path / "artifacts")},
        seed=11)
    run = run_trainer(config, timeout=420)
    assert run.returncode == 0, run.output[-3000:]
    line = re.search(r"validation reward before=(\S+) after=(\S+) seed=(\d+) model=(\S+)",
                     run.output)
    assert line, run.output[-2000:]
    before, after = float(line.group(1)), float(line.group(2))
    print(f"math-solver validation reward before={before} after={after} seed={line.group(3)}")
    assert after > before
    result = run.report["result"]
    assert result["validationRewardBefore"] == pytest.approx(before, abs=1e-4)
    assert result["validationRewardAfter"] == pytest.approx(after, abs=1e-4)
    assert run.report["progress"]["step"] == 5
    # keep=1: only the newest periodic checkpoint is left; the final model loads.
    assert sorted(p.name for p in run.checkpoint_dir.glob("step-*")) == ["step-4"]
    model = AutoModelForCausalLM.from_pretrained(line.group(4))
    assert model.config.num_hidden_layers == 30
