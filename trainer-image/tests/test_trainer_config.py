"""TrainerConfig parsing and the verl config builder (pure)."""

import json

import pytest
from arclight_trainer.backends.verl import build_verl_config
from arclight_trainer.config import ConfigError, load_config, parse_config, reward_components

pytestmark = pytest.mark.unit

ARCHITECTURE_EXAMPLE = {
    "apiVersion": "arclight.dev/v1alpha1", "kind": "TrainerConfig",
    "run": {"name": "demo", "namespace": "team-a", "uid": "u1", "attempt": 1},
    "template": "math-solver", "taskType": "math", "agent": None,
    "dataset": {"uri": "sample://math-solver", "format": "jsonl", "validationFraction": "0.2",
                "credentialsDir": None},
    "model": {"base": "smollm2-135m-instruct", "adapter": "lora"},
    "algorithm": "grpo", "backend": "cpu",
    "hyperparameters": {"learningRate": "1e-4", "batchSize": 4, "groupSize": 4, "maxSteps": 8,
                        "epochs": None, "gradientAccumulation": 1, "scheduler": "constant",
                        "optimizer": "adamw", "warmupSteps": 0, "klCoef": "0.02",
                        "clipRange": "0.2", "rewardScale": "1", "rewardClip": "5",
                        "earlyStopping": None, "maxNewTokens": 48, "temperature": "1.0"},
    "reward": {"components": [{"name": "taskSuccess", "weight": "0.8", "params": {}},
                              {"name": "format", "weight": "0.2", "params": {}}]},
    "resources": {"gpu": {"type": "none", "count": 0}, "nodes": 1},
    "rollouts": {"workers": 2, "concurrency": 4, "timeoutSeconds": 120},
    "checkpoint": {"everySteps": 4, "keep": 2, "dir": "/artifacts/team-a/demo"},
    "resumeFrom": None, "tracking": {"mlflow": None},
    "report": {"configMap": "demo-report", "namespace": "team-a"}, "seed": 42,
}


def test_architecture_example_parses(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(ARCHITECTURE_EXAMPLE))
    config = load_config(path)
    assert config.hyperparameters.total_steps(100) == 8
    assert config.report.config_map == "demo-report"
    assert reward_components(config, [])[0] == {"name": "taskSuccess", "weight": "0.8",
                                                "params": {}}
    default = [{"name": "format", "weight": "1", "params": {}}]
    bare = parse_config({**ARCHITECTURE_EXAMPLE, "reward": {"components": []}})
    assert reward_components(bare, default) == default


def test_epochs_give_steps_over_the_training_split():
    data = json.loads(json.dumps(ARCHITECTURE_EXAMPLE))
    data["hyperparameters"].update(maxSteps=None, epochs=2)
    assert parse_config(data).hyperparameters.total_steps(10) == 5  # ceil(2 * 10 / 4)


@pytest.mark.parametrize("path,value,needle", [
    (("hyperparameters", "learningRate"), "fast", "learningRate"),
    (("hyperparameters", "optimizer"), "lion", "optimizer"),
    (("dataset", "validationFraction"), "1.5", "validationFraction"),
    (("reward", "components"), [{"name": "vibes", "weight": "1"}], "name"),
    (("hyperparameters", "batchSize"), 0, "batchSize"),
    (("hyperparameters", "warmup"), 3, "warmup"),
])
def test_invalid_fields_are_named(path, value, needle):
    data = json.loads(json.dumps(ARCHITECTURE_EXAMPLE))
    data[path[0]][path[1]] = value
    with pytest.raises(ConfigError, match=needle):
        parse_config(data)


def test_verl_config_maps_hyperparameters():
    data = json.loads(json.dumps(ARCHITECTURE_EXAMPLE))
    data.update(backend="verl", resources={"gpu": {"type": "h100", "count": 4}, "nodes": 2})
    built = build_verl_config(parse_config(data), model_path="/m", agl_url="http://a:1",
                              output_dir="/out")
    actor = built["actor_rollout_ref"]["actor"]
    assert built["algorithm"]["adv_estimator"] == "grpo"
    assert actor["optim"]["lr"] == pytest.approx(1e-4)
    assert actor["kl_loss_coef"] == pytest.approx(0.02) and actor["use_kl_loss"]
    assert built["actor_rollout_ref"]["rollout"]["n"] == 4
    assert built["actor_rollout_ref"]["model"]["lora_rank"] > 0
    assert built["trainer"]["n_gpus_per_node"] == 4 and built["trainer"]["nnodes"] == 2
    assert built["trainer"]["save_freq"] == 4 and built["trainer"]["total_training_steps"] == 8
    assert built["agentlightning"]["local"]["agent_class"].endswith("agent_main:TemplateAgent")
    assert "${oc.env:" in built["agentlightning"]["agl_key"]  # the key never lands in files


def test_template_or_agent_is_required():
    data = json.loads(json.dumps(ARCHITECTURE_EXAMPLE))
    data["template"] = None
    with pytest.raises(ConfigError, match="one of template or agent"):
        parse_config(data)
    data["agent"] = {"entrypoint": "acme.agent:run"}
    assert parse_config(data).agent.entrypoint == "acme.agent:run"
