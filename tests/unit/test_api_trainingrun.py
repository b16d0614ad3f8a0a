"""TrainingRun models: defaults, camelCase, one-of rules and value checks, as in API.md."""

from __future__ import annotations

import pytest
from arclight.api import TrainingRun, TrainingRunSpec, TrainingRunStatus, trainingrun
from pydantic import ValidationError

pytestmark = pytest.mark.unit


def _spec(**fields) -> TrainingRunSpec:
    return TrainingRunSpec.model_validate({"template": "math-solver", **fields})


def _error(**fields) -> str:
    with pytest.raises(ValidationError) as caught:
        TrainingRunSpec.model_validate(fields)
    return str(caught.value)


def test_kind_constants():
    assert (trainingrun.KIND, trainingrun.PLURAL, trainingrun.SINGULAR) == (
        "TrainingRun",
        "trainingruns",
        "trainingrun",
    )
    assert trainingrun.SHORT_NAMES == ["tr"] and trainingrun.SCOPE == "Namespaced"
    assert len(trainingrun.TEMPLATES) == 10


def test_everything_but_the_template_defaults():
    spec = _spec()
    assert spec.dataset.uri is None and spec.dataset.format == "auto"
    assert spec.dataset.validation_fraction == "0.1"
    assert (spec.model.base, spec.model.adapter, spec.algorithm) == ("auto", "auto", "auto")
    assert spec.hyperparameters.learning_rate == "auto"
    assert spec.hyperparameters.batch_size == "auto"
    assert spec.retry.max_attempts == 2 and spec.retry.auto_remediate is True
    assert spec.resources.gpu.type == "none" and spec.resources.gpu.effective_count == 0
    assert spec.resources.nodes == 1 and spec.suspend is False


def test_camel_case_round_trip():
    document = {
        "template": "sql-agent",
        "hyperparameters": {"learningRate": "1e-5", "maxSteps": 10, "klCoef": "0.05"},
        "resources": {"gpu": {"type": "a100", "count": 2}, "cpu": "4", "memory": "16Gi"},
        "retry": {"maxAttempts": 3, "autoRemediate": False},
        "budgetRef": "team-a",
        "activeDeadlineSeconds": 3600,
    }
    spec = TrainingRunSpec.model_validate(document)
    assert spec.hyperparameters.max_steps == 10 and spec.budget_ref == "team-a"
    dumped = spec.model_dump(by_alias=True, exclude_defaults=True)
    assert dumped == document


def test_spec_is_frozen():
    spec = _spec()
    with pytest.raises(ValidationError):
        spec.algorithm = "ppo"


def test_unknown_fields_are_rejected():
    assert "learningrate" in _error(template="math-solver", learningrate="1e-4")


def test_exactly_one_of_template_or_agent():
    assert "set exactly one of template or agent" in _error()
    agent = {"image": "ghcr.io/acme/agent:1", "entrypoint": "acme.agent:run"}
    both = _error(template="math-solver", agent=agent, dataset={"uri": "s3://b/d.jsonl"})
    assert "set exactly one of template or agent (got template, agent)" in both


def test_custom_agent_needs_a_dataset():
    agent = {"image": "ghcr.io/acme/agent:1", "entrypoint": "acme.agent:run"}
    assert "dataset.uri" in _error(agent=agent)
    spec = TrainingRunSpec.model_validate(
        {"agent": agent, "dataset": {"uri": "pvc://data/train.parquet"}}
    )
    assert spec.agent.entrypoint == "acme.agent:run"


def test_max_steps_or_epochs():
    message = _error(template="math-solver", hyperparameters={"maxSteps": 5, "epochs": 2})
    assert "set maxSteps or epochs, not both" in message
    assert _spec(hyperparameters={"epochs": 2, "maxSteps": "auto"}).hyperparameters.epochs == 2


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"template": "chess-bot"}, "template"),
        ({"hyperparameters": {"learningRate": "fast"}}, "learningRate"),
        ({"hyperparameters": {"learningRate": 0.001}}, "learningRate"),
        ({"hyperparameters": {"batchSize": 0}}, "batchSize"),
        ({"hyperparameters": {"batchSize": "many"}}, "batchSize"),
        ({"dataset": {"validationFraction": "1.5"}}, "validationFraction"),
        ({"dataset": {"uri": "ftp://host/data.csv"}}, "uri"),
        ({"dataset": {"format": "xlsx"}}, "format"),
        ({"resources": {"memory": "lots"}}, "memory"),
        ({"resources": {"gpu": {"type": "none", "count": 2}}}, "gpu.count"),
        ({"reward": {"components": [{"name": "format"}, {"name": "format"}]}}, "duplicate"),
        ({"checkpoint": {"uri": "s3://bucket/ckpt"}}, "uri"),
        ({"retry": {"maxAttempts": 0}}, "maxAttempts"),
        ({"algorithm": "dpo"}, "algorithm"),
    ],
)
def test_invalid_values_name_the_field(fields, field):
    assert field in _error(**{"template": "math-solver", **fields})


def test_decimal_strings_accept_exponents_and_fractions():
    spec = _spec(
        hyperparameters={"learningRate": "1e-5", "rewardClip": "2.5", "klCoef": ".02"},
        reward={"components": [{"name": "taskSuccess", "weight": "0.8", "params": {"k": [1]}}]},
    )
    assert spec.hyperparameters.learning_rate == "1e-5"
    assert spec.reward.components[0].params == {"k": [1]}


def test_gpu_count_defaults_to_one_when_a_type_is_set():
    assert _spec(resources={"gpu": {"type": "l4"}}).resources.gpu.effective_count == 1


def test_notify_needs_url_or_secret():
    assert "notify: set exactly one of url or secretRef" in _error(
        template="math-solver", notify=[{"events": ["Failed"]}]
    )
    spec = _spec(notify=[{"secretRef": {"name": "hooks", "key": "slack"}}])
    assert spec.notify[0].events == ["Succeeded", "Failed", "BudgetWarning"]


def test_whole_object_with_status_reads_from_the_cluster_shape():
    run = TrainingRun.model_validate(
        {
            "apiVersion": "arclight.dev/v1alpha1",
            "kind": "TrainingRun",
            "metadata": {"name": "demo", "namespace": "team-a", "resourceVersion": "7"},
            "spec": {"template": "math-solver"},
            "status": {
                "phase": "Running",
                "conditions": [
                    {
                        "type": "Running",
                        "status": "True",
                        "reason": "Training",
                        "lastTransitionTime": "2025-01-01T00:00:00Z",
                    }
                ],
                "progress": {"step": 2, "totalSteps": 8, "percent": 25},
                "metrics": {"reward": {"mean": 0.5}},
            },
        }
    )
    assert run.metadata.name == "demo" and run.status.progress.percent == 25
    assert run.status.conditions[0].last_transition_time.year == 2025
    assert TrainingRunStatus().model_dump(by_alias=True, exclude_none=True) == {
        "conditions": [],
        "attempts": 0,
    }
