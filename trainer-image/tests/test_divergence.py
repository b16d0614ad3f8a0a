"""An absurd learning rate is detected as divergence: exit 3 and the Diverged termination JSON."""

from trainer_configs import base_config


def test_huge_learning_rate_exits_diverged(run_trainer, tmp_path):
    config = base_config(tmp_path, hyperparameters={
        "learningRate": "1e3", "batchSize": 2, "groupSize": 2, "maxSteps": 4,
        "maxNewTokens": 8, "klCoef": "0.02", "optimizer": "sgd"},
        # The cost penalty varies with reply length, so every group has an advantage.
        reward={"components": [{"name": "cost", "weight": "1", "params": {"budgetTokens": "8"}}]})
    run = run_trainer(config, timeout=300)
    assert run.returncode == 3, run.output[-3000:]
    assert run.termination["reason"] == "Diverged"
    assert run.termination["suggestions"]
    assert "learningRate" in run.termination["suggestions"][0]
    assert "result" not in run.report
