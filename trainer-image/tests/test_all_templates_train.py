"""Each of the ten templates trains one short step end to end (real trainer runs, a few at once).

The runs overlap (CONCURRENT at a time) so that one run's imports, model load and Agent
Lightning start-up fill the others' waits for rollouts.
"""

import time

import pytest
from arclight_trainer.templates import NAMES
from trainer_configs import base_config
from trainer_process import TrainerProcess, TrainerRun

CONCURRENT = 3
TOTAL_TIMEOUT_S = 900
POLL_S = 0.5


def template_config(template: str, directory) -> dict:
    return base_config(
        directory, template=template,
        dataset={"uri": f"sample://{template}", "validationFraction": "0.02"},
        hyperparameters={"learningRate": "1e-4", "batchSize": 1, "groupSize": 2, "maxSteps": 1,
                         "maxNewTokens": 8, "klCoef": "0.02"})


@pytest.fixture(scope="module")
def template_runs(tmp_path_factory) -> dict[str, TrainerRun]:
    """Every template's run, at most CONCURRENT at a time, all within TOTAL_TIMEOUT_S."""
    pending, running, done = list(NAMES), {}, {}
    started = time.monotonic()
    deadline = started + TOTAL_TIMEOUT_S
    while running or (pending and time.monotonic() < deadline):
        while pending and len(running) < CONCURRENT and time.monotonic() < deadline:
            name = pending.pop(0)
            directory = tmp_path_factory.mktemp(name)
            running[name] = (TrainerProcess(template_config(name, directory), directory),
                             time.monotonic())
        for name, (trainer, began) in list(running.items()):
            if trainer.proc.poll() is not None or time.monotonic() > deadline:
                done[name] = trainer.wait(timeout=0)
                print(f"{name}: exit {done[name].returncode} in {time.monotonic() - began:.0f}s")
                del running[name]
        time.sleep(POLL_S)
    print(f"all templates: {time.monotonic() - started:.0f}s")
    return done


@pytest.mark.parametrize("template", NAMES)
def test_template_trains_one_step(template_runs, template):
    assert template in template_runs, f"{template} was not started within the time limit"
    run = template_runs[template]
    assert run.returncode == 0, run.output[-3000:]
    assert f"template={template} " in run.output
    assert run.report["progress"]["step"] == 1
    assert run.report["result"]["validationRewardBefore"] is not None
    assert (run.checkpoint_dir / "final" / "config.json").exists()
