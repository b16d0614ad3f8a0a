"""Each of the ten templates runs one short training step end to end without error."""

import pytest

from arclight_trainer.templates import NAMES
from trainer_configs import base_config


@pytest.mark.parametrize("template", NAMES)
def test_template_trains_one_step(run_trainer, tmp_path, template):
    config = base_config(
        tmp_path, template=template,
        dataset={"uri": f"sample://{template}", "validationFraction": "0.05"},
        hyperparameters={"learningRate": "1e-4", "batchSize": 1, "groupSize": 2, "maxSteps": 1,
                         "maxNewTokens": 12, "klCoef": "0.02"})
    run = run_trainer(config, timeout=300)
    assert run.returncode == 0, run.output[-3000:]
    assert run.report["progress"]["step"] == 1
    assert run.report["result"]["validationRewardBefore"] is not None
    assert (run.checkpoint_dir / "final" / "config.json").exists()
