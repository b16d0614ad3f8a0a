"""Sweep, ModelDeployment and CreditBudget models: defaults and rules from API.md."""

from __future__ import annotations

import pytest
from arclight.api import (
    CreditBudgetSpec,
    ModelDeploymentSpec,
    SweepSpec,
    creditbudget,
    modeldeployment,
    sweep,
)
from pydantic import ValidationError

pytestmark = pytest.mark.unit

RUN = {"template": "math-solver", "hyperparameters": {"maxSteps": 4}}
LR = {"name": "hyperparameters.learningRate", "type": "double", "min": "1e-5", "max": "1e-3"}


def _error(model, document) -> str:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(document)
    return str(caught.value)


def test_constants():
    assert (sweep.KIND, sweep.PLURAL, sweep.SHORT_NAMES, sweep.SCOPE) == (
        "Sweep",
        "sweeps",
        ["sw"],
        "Namespaced",
    )
    assert (modeldeployment.PLURAL, modeldeployment.SHORT_NAMES) == ("modeldeployments", ["md"])
    assert (creditbudget.PLURAL, creditbudget.SHORT_NAMES, creditbudget.SCOPE) == (
        "creditbudgets",
        ["cb"],
        "Cluster",
    )


def test_sweep_defaults():
    spec = SweepSpec.model_validate({"trainingRunTemplate": RUN, "parameters": [LR]})
    assert spec.parallelism == 3 and spec.algorithm == "random"
    assert spec.objective.metric == "validationReward"
    assert spec.objective.direction == "maximize"
    assert spec.early_stopping.algorithm == "none"
    assert spec.training_run_template.hyperparameters.max_steps == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"parallelism": 11}, "parallelism"),
        ({"parameters": [{**LR, "name": "hyperparameters.speed"}]}, "not a TrainingRun spec field"),
        ({"parameters": [{**LR, "min": "1e-3", "max": "1e-5"}]}, "min must be below max"),
        ({"parameters": [{"name": "algorithm", "type": "categorical"}]}, "values: required"),
        ({"parameters": [LR, LR]}, "each name may appear once"),
        ({"algorithm": "grid"}, "grid search needs explicit values"),
        ({"trainingRunTemplate": {"hyperparameters": {"maxSteps": 4}}}, "template or agent"),
    ],
)
def test_sweep_rules(change, message):
    document = {"trainingRunTemplate": RUN, "parameters": [LR], **change}
    assert message in _error(SweepSpec, document)


def test_sweep_categorical_and_grid_values():
    spec = SweepSpec.model_validate(
        {
            "trainingRunTemplate": RUN,
            "algorithm": "grid",
            "parameters": [
                {"name": "algorithm", "type": "categorical", "values": ["grpo", "ppo"]},
                {"name": "hyperparameters.batchSize", "type": "int", "values": ["4", "8"]},
            ],
        }
    )
    assert [parameter.values for parameter in spec.parameters] == [["grpo", "ppo"], ["4", "8"]]


def test_model_deployment_source_is_exactly_one():
    assert "set exactly one of trainingRun or mlflowModel or uri" in _error(
        ModelDeploymentSpec, {"source": {}}
    )
    assert "(got trainingRun, uri)" in _error(
        ModelDeploymentSpec, {"source": {"trainingRun": "demo", "uri": "pvc://models/demo"}}
    )
    spec = ModelDeploymentSpec.model_validate({"source": {"mlflowModel": "models:/math@champion"}})
    assert spec.runtime == "auto" and spec.autoscaling.min_replicas == 1
    assert "mlflowModel" in _error(ModelDeploymentSpec, {"source": {"mlflowModel": "math"}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"autoscaling": {"minReplicas": 3, "maxReplicas": 2}}, "must not exceed maxReplicas"),
        (
            {"autoscaling": {"targetConcurrency": 4, "targetCPUPercent": 70}},
            "targetConcurrency or targetCPUPercent",
        ),
        ({"canary": {"source": {"uri": "pvc://m/x"}, "weight": 101}}, "weight"),
        ({"canary": {"source": {"uri": "pvc://m/x"}, "steps": [50, 10]}}, "strictly increasing"),
        ({"rateLimit": {"requestsPerSecond": 0}}, "requestsPerSecond"),
    ],
)
def test_model_deployment_rules(change, message):
    assert message in _error(ModelDeploymentSpec, {"source": {"trainingRun": "demo"}, **change})


def test_model_deployment_scale_to_zero_and_aliases():
    spec = ModelDeploymentSpec.model_validate(
        {
            "source": {"trainingRun": "demo"},
            "autoscaling": {"minReplicas": 0, "targetCPUPercent": 60},
            "canary": {"source": {"trainingRun": "demo-v2"}, "analysis": {"maxP95LatencyMs": 800}},
        }
    )
    dumped = spec.model_dump(by_alias=True, exclude_defaults=True)
    assert dumped["autoscaling"] == {"minReplicas": 0, "targetCPUPercent": 60}
    assert dumped["canary"]["analysis"] == {"maxP95LatencyMs": 800}


def test_credit_budget_defaults():
    spec = CreditBudgetSpec.model_validate({"credits": 1000})
    assert spec.alerts == [75, 90, 100]
    rates = spec.rates.gpu_hour
    assert (rates.t4, rates.v100, rates.a100, rates.h100) == (7, 15, 35, 75)
    assert spec.period.type == "monthly" and spec.rollover is False
    assert spec.enforcement == "hold"
    assert spec.model_dump(by_alias=True)["rates"]["memoryGiBHour"] == "0.5"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"credits": -1}, "credits"),
        ({"alerts": [50, 120]}, "alerts"),
        ({"enforcement": "block"}, "enforcement"),
        ({"period": {"type": "weekly", "resetDay": 9}}, "resetDay"),
        ({"rates": {"cpuHour": "cheap"}}, "cpuHour"),
        (
            {"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "In"}]}},
            "values: required with In",
        ),
        ({"notify": [{"url": "mailto:ops@example.com"}]}, "url"),
    ],
)
def test_credit_budget_rules(change, message):
    assert message in _error(CreditBudgetSpec, {"credits": 100, **change})
