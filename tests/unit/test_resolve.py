"""Magic train: hand-checked resolutions of `auto`, and the TrainerConfig the trainer accepts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from arclight.api import TrainingRunStatus, trainingrun
from arclight.api.trainer import TrainerConfig
from arclight.framework.settings import Settings
from arclight.training import catalog
from arclight.training.resolve import ResolveError, resolve, with_fixes
from arclight_trainer.config import parse_config
from arclight_trainer.templates import get_template

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[2] / "trainer-image/arclight_trainer/templates/data"
PLATFORM = Settings()


def _resolve(spec: dict, settings: Settings = PLATFORM, attempt: int = 1):
    return resolve(
        spec, name="demo", namespace="team-a", uid="uid-1", attempt=attempt, settings=settings
    )


def _json(config: TrainerConfig) -> dict:
    """The TrainerConfig as the trainer reads it (`config.json`)."""
    return config.model_dump(by_alias=True, mode="json")


def test_auto_everything_on_cpu():
    resolved, typed = _resolve({"template": "math-solver"})
    config = _json(typed)
    # 240 sample rows, 10% held out -> 216 train rows; 216 / 4 = 54 steps per epoch,
    # capped at 20 on CPU; a checkpoint every 20 // 2 = 10 steps.
    assert resolved == {
        "template": "math-solver",
        "taskType": "math",
        "dataset": {
            "uri": "sample://math-solver",
            "format": "jsonl",
            "size": 240,
            "validationFraction": "0.1",
        },
        "model": {"base": "smollm2-135m-instruct", "adapter": "lora"},
        "algorithm": "grpo",
        "backend": "cpu",
        "hyperparameters": {
            "learningRate": "1e-4",
            "batchSize": 4,
            "groupSize": 4,
            "maxSteps": 20,
            "epochs": None,
            "gradientAccumulation": 1,
            "scheduler": "constant",
            "optimizer": "adamw",
            "warmupSteps": 0,
            "klCoef": "0.02",
            "clipRange": "0.2",
            "rewardScale": "1",
            "rewardClip": "5",
            "earlyStopping": None,
            "maxNewTokens": 48,
            "temperature": "1.0",
        },
        "resources": {"gpu": {"type": "none", "count": 0}, "cpu": "1", "memory": "4Gi", "nodes": 1},
        "rollouts": {"workers": 2, "concurrency": 12, "timeoutSeconds": 120, "retries": 1},
        "checkpoint": {"everySteps": 10, "keep": 2, "dir": "/artifacts/team-a/demo"},
        "evaluation": {"everySteps": 0},
    }
    assert config["evaluation"] == {"everySteps": 0}
    assert config["run"] == {"name": "demo", "namespace": "team-a", "uid": "uid-1", "attempt": 1}
    assert config["reward"]["components"] == [
        {"name": "taskSuccess", "weight": "0.8", "params": {}},
        {"name": "format", "weight": "0.2", "params": {}},
    ]
    assert config["report"] == {"configMap": "demo-report", "namespace": "team-a"}
    assert config["tracking"] == {"mlflow": None} and config["resumeFrom"] is None
    assert config["hyperparameters"] == resolved["hyperparameters"]
    assert parse_config(config).hyperparameters.max_steps == 20


def test_explicit_values_are_kept():
    spec = {
        "template": "sql-agent",
        "dataset": {"uri": "s3://bucket/train.parquet", "validationFraction": "0.2"},
        "model": {"base": "acme/sql-7b", "adapter": "full"},
        "algorithm": "grpo",  # explicit ppo is kept too, on a GPU (its own test)
        "hyperparameters": {
            "learningRate": "3e-6",
            "batchSize": 8,
            "maxSteps": 12,
            "gradientAccumulation": 2,
            "scheduler": "cosine",
            "optimizer": "sgd",
            "warmupSteps": 3,
            "klCoef": "0.1",
            "rewardScale": "2",
            "rewardClip": "3",
            "earlyStopping": {"metric": "successRate", "patience": 2, "minDelta": "0.01"},
        },
        "reward": {"components": [{"name": "taskSuccess", "weight": "1", "params": {"k": 1}}]},
        "resources": {"cpu": "3", "memory": "6Gi"},
        "rollouts": {"workers": 3, "concurrency": 5, "timeoutSeconds": 60, "retries": 3},
        "checkpoint": {"everySteps": 5, "keep": 4, "uri": "pvc://checkpoints/exp-1"},
    }
    resolved, typed = _resolve(spec)
    config = _json(typed)
    assert resolved["dataset"] == {
        "uri": "s3://bucket/train.parquet",
        "format": "parquet",
        "size": None,
        "validationFraction": "0.2",
    }
    assert resolved["model"] == {"base": "acme/sql-7b", "adapter": "full"}
    assert resolved["algorithm"] == "grpo"
    hp = resolved["hyperparameters"]
    assert (hp["learningRate"], hp["batchSize"], hp["maxSteps"], hp["epochs"]) == (
        "3e-6",
        8,
        12,
        None,
    )
    assert (hp["gradientAccumulation"], hp["scheduler"], hp["optimizer"]) == (2, "cosine", "sgd")
    assert (hp["warmupSteps"], hp["klCoef"], hp["rewardScale"], hp["rewardClip"]) == (
        3,
        "0.1",
        "2",
        "3",
    )
    assert hp["earlyStopping"] == {"metric": "successRate", "patience": 2, "minDelta": "0.01"}
    assert resolved["resources"] == {
        "gpu": {"type": "none", "count": 0},
        "cpu": "3",
        "memory": "6Gi",
        "nodes": 1,
    }
    assert resolved["rollouts"] == {"workers": 3, "concurrency": 5, "timeoutSeconds": 60, "retries": 3}
    assert resolved["checkpoint"] == {"everySteps": 5, "keep": 4, "dir": "/artifacts/exp-1"}
    assert config["reward"]["components"] == [
        {"name": "taskSuccess", "weight": "1", "params": {"k": 1}}
    ]
    assert parse_config(config).model.adapter == "full"


def test_gpu_request_selects_verl_and_sizes_from_the_gpus():
    resolved, typed = _resolve(
        {"template": "math-solver", "resources": {"gpu": {"type": "a100", "count": 2}, "nodes": 2}}
    )
    config = _json(typed)
    assert resolved["backend"] == config["backend"] == "verl"
    # 32 prompts per A100 x 2 GPUs x 2 nodes = 128 (below the 216 train rows);
    # auto steps on GPU are one epoch: ceil(216 / 128) = 2.
    assert resolved["hyperparameters"]["batchSize"] == 128
    assert resolved["hyperparameters"]["maxSteps"] == 2
    assert resolved["resources"] == {
        "gpu": {"type": "a100", "count": 2},
        "cpu": "8",
        "memory": "32Gi",
        "nodes": 2,
    }
    assert resolved["rollouts"] == {"workers": 4, "concurrency": 16, "timeoutSeconds": 120, "retries": 1}
    assert config["resources"] == {"gpu": {"type": "a100", "count": 2}, "nodes": 2}
    parse_config(config)


def test_auto_batch_never_exceeds_the_training_rows():
    resolved, _ = _resolve({"template": "content-writer", "resources": {"gpu": {"type": "h100"}}})
    # 60 rows, 6 held out -> 54 train rows: 32 per H100 fits, 4 x 32 = 128 is cut to 54.
    assert resolved["hyperparameters"]["batchSize"] == 32
    resolved, _ = _resolve(
        {"template": "content-writer", "resources": {"gpu": {"type": "h100", "count": 4}}}
    )
    assert resolved["hyperparameters"]["batchSize"] == 54


def test_epochs_become_steps_from_the_dataset_size():
    resolved, config = _resolve(
        {
            "template": "math-solver",
            "dataset": {"validationFraction": "0.25"},
            "hyperparameters": {"epochs": 2, "batchSize": 8},
        }
    )
    # 240 rows, 60 held out -> 180 train rows; ceil(180 / 8) = 23 steps x 2 epochs = 46,
    # not capped: epochs were asked for explicitly.
    assert resolved["hyperparameters"]["maxSteps"] == 46
    assert resolved["hyperparameters"]["epochs"] == 2
    assert resolved["checkpoint"]["everySteps"] == 23
    assert parse_config(_json(config)).hyperparameters.total_steps(180) == 46


def test_epochs_on_a_dataset_of_unknown_size_are_left_to_the_trainer():
    resolved, config = _resolve(
        {
            "template": "math-solver",
            "dataset": {"uri": "gs://b/math.jsonl"},
            "hyperparameters": {"epochs": 3},
        }
    )
    assert resolved["dataset"]["size"] is None
    assert (resolved["hyperparameters"]["maxSteps"], resolved["hyperparameters"]["epochs"]) == (
        None,
        3,
    )
    assert resolved["checkpoint"]["everySteps"] == 50
    # The trainer derives the steps once it has read the data: 3 x ceil(300 / 4) = 225.
    assert parse_config(_json(config)).hyperparameters.total_steps(300) == 225


def test_unknown_size_and_auto_steps_use_the_backend_default():
    resolved, _ = _resolve({"template": "math-solver", "dataset": {"uri": "https://h/m.csv"}})
    assert resolved["dataset"]["format"] == "csv"
    assert resolved["hyperparameters"]["maxSteps"] == catalog.CPU_MAX_STEPS


def test_learning_rate_follows_the_adapter():
    rates = {
        adapter: _resolve({"template": "math-solver", "model": {"adapter": adapter}})[0][
            "hyperparameters"
        ]["learningRate"]
        for adapter in ("auto", "lora", "full")
    }
    assert rates == {"auto": "1e-4", "lora": "1e-4", "full": "1e-5"}


def test_algorithm_auto_is_grpo_and_explicit_choices_are_kept():
    chosen = {name: _resolve({"template": name})[0]["algorithm"] for name in trainingrun.TEMPLATES}
    assert set(chosen.values()) == {"grpo"}
    gpu = {"gpu": {"type": "a100", "count": 1}}
    assert _resolve({"template": "math-solver", "algorithm": "ppo", "resources": gpu})[0][
        "algorithm"] == "ppo"


@pytest.mark.parametrize(("spec", "says"), [
    ({"algorithm": "ppo"}, "ppo needs a GPU"),
    ({"algorithm": "sft"}, "no trainer backend implements it"),
    ({"algorithm": "apo", "resources": {"gpu": {"type": "h100", "count": 1}}},
     "not supported by the verl backend"),
])
def test_algorithms_the_backend_lacks_are_refused_naming_the_field(spec, says):
    with pytest.raises(ResolveError, match=f"spec.algorithm: .*{says}"):
        _resolve({"template": "math-solver", **spec})


def test_backend_algorithms_match_the_trainer():
    from arclight_trainer.backends import ALGORITHMS
    assert {k: tuple(v) for k, v in catalog.BACKEND_ALGORITHMS.items()} == ALGORITHMS


def test_custom_agent():
    spec = {
        "agent": {
            "image": "ghcr.io/acme/agent:1",
            "entrypoint": "acme.agent:run",
            "reward": "acme.agent:score",
            "env": [{"name": "MODE", "value": "fast"}],
        },
        "dataset": {"uri": "configmap://tasks/train.csv", "secretRef": {"name": "creds"}},
    }
    resolved, typed = _resolve(spec)
    config = _json(typed)
    assert (resolved["template"], resolved["taskType"], resolved["algorithm"]) == (
        None,
        "custom",
        "grpo",
    )
    assert resolved["dataset"]["format"] == "csv"
    assert config["agent"] == {
        "image": "ghcr.io/acme/agent:1",
        "entrypoint": "acme.agent:run",
        "reward": "acme.agent:score",
        "env": [{"name": "MODE", "value": "fast"}],
    }
    assert config["reward"]["components"] == [{"name": "custom", "weight": "1", "params": {}}]
    assert config["dataset"]["credentialsDir"] == "/var/run/arclight/dataset-credentials"
    parse_config(config)


def test_mlflow_tracking_when_the_platform_has_it():
    settings = Settings(mlflow_uri="http://mlflow.arclight-system:5000")
    _, typed = _resolve({"template": "math-solver"}, settings=settings)
    config = _json(typed)
    assert config["tracking"]["mlflow"] == {
        "trackingUri": "http://mlflow.arclight-system:5000",
        "experiment": "team-a",
        "registeredModel": None,
    }
    _, typed = _resolve(
        {
            "template": "math-solver",
            "tracking": {"mlflow": {"experiment": "math", "registeredModel": "math-agent"}},
        },
        settings=settings,
    )
    config = _json(typed)
    assert config["tracking"]["mlflow"]["experiment"] == "math"
    assert config["tracking"]["mlflow"]["registeredModel"] == "math-agent"
    parse_config(config)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"template": "math-solver", "dataset": {"uri": "s3://b/data.xlsx"}}, "dataset.format"),
        ({"template": "math-solver", "dataset": {"uri": "s3://b/data"}}, "dataset.format"),
        ({"template": "math-solver", "dataset": {"uri": "sample://chess"}}, "dataset.uri"),
    ],
)
def test_unresolvable_specs_name_the_field(spec, field):
    with pytest.raises(ResolveError, match=field):
        _resolve(spec)


def test_explicit_format_wins_over_the_extension():
    spec = {"template": "math-solver", "dataset": {"uri": "s3://b/data.txt", "format": "jsonl"}}
    assert _resolve(spec)[0]["dataset"]["format"] == "jsonl"


def test_pure_and_deterministic():
    spec = {"template": "task-planner", "hyperparameters": {"maxSteps": 6}}
    before = copy.deepcopy(spec)
    first = _resolve(spec, attempt=2)
    assert first == _resolve(spec, attempt=2) and spec == before
    assert first.trainer_config.run.attempt == 2
    first.resolved["hyperparameters"]["batchSize"] = 1  # callers may apply fixes in place
    assert first.trainer_config.hyperparameters.batch_size == 4


def test_with_fixes_applies_overrides_and_resume_point():
    _, config = _resolve({"template": "math-solver"}, attempt=2)
    fixed = with_fixes(config, {"batchSize": 2, "gradientAccumulation": 2},
                       "pvc://artifacts/team-a/demo/step-10")
    assert (fixed.hyperparameters.batch_size, fixed.hyperparameters.gradient_accumulation) == (
        2,
        2,
    )
    assert fixed.resume_from == "pvc://artifacts/team-a/demo/step-10"
    assert config.hyperparameters.batch_size == 4 and config.resume_from is None  # a copy
    assert _json(fixed) == {
        **_json(config),
        "hyperparameters": {**_json(config)["hyperparameters"], "batchSize": 2,
                            "gradientAccumulation": 2},
        "resumeFrom": "pvc://artifacts/team-a/demo/step-10",
    }
    assert with_fixes(config, {}, None) == config
    assert with_fixes(config, {"learningRate": "1e-5"}).hyperparameters.learning_rate == "1e-5"
    with pytest.raises(ValueError, match="batchSize"):
        with_fixes(config, {"batchSize": 0})
    with pytest.raises(ValueError, match="batchSz"):
        with_fixes(config, {"batchSz": 2})


def test_resolved_fits_the_status_schema():
    for name in trainingrun.TEMPLATES:
        resolved, _ = _resolve({"template": name})
        status = TrainingRunStatus.model_validate({"resolved": resolved})
        assert status.model_dump(by_alias=True, mode="json")["resolved"] == resolved


def test_catalog_matches_the_trainer_templates():
    assert tuple(catalog.TEMPLATES) == trainingrun.TEMPLATES
    for name, info in catalog.TEMPLATES.items():
        template = get_template(name)
        assert info.task_type == template.task_type, name
        assert list(info.default_reward) == template.default_reward, name
        rows = [line for line in (DATA / f"{name}.jsonl").read_text().splitlines() if line.strip()]
        assert info.sample_rows == len(rows), name


def test_evaluation_every_steps_reaches_the_trainer():
    resolved, typed = _resolve({"template": "math-solver", "evaluation": {"everySteps": 5}})
    assert resolved["evaluation"] == {"everySteps": 5}
    assert _json(typed)["evaluation"] == {"everySteps": 5}


@pytest.mark.parametrize(("extra", "field"), [
    ({"rollouts": {"retries": 2}}, "spec.rollouts.retries"),
    ({"evaluation": {"everySteps": 5}}, "spec.evaluation.everySteps")])
def test_cpu_only_rollout_fields_are_refused_for_gpu_runs(extra, field):
    with pytest.raises(ResolveError, match=field):
        _resolve({"template": "math-solver", "resources": {"gpu": {"type": "a100", "count": 1}},
                  **extra})
