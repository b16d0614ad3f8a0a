"""Sweep: a hyperparameter search that creates TrainingRuns (short name `sw`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Literal, Self, get_args

from pydantic import BaseModel, Field, model_validator

from arclight.api.common import (
    API_VERSION,
    Conditions,
    DecimalStr,
    KubeObject,
    Name,
    ObjectMeta,
    SpecModel,
    StatusModel,
)
from arclight.api.trainingrun import TrainingRunSpec

KIND: Final = "Sweep"
PLURAL = "sweeps"
SINGULAR = "sweep"
SHORT_NAMES = ["sw"]
SCOPE = "Namespaced"

MAX_PARALLELISM = 10
TrialState = Literal["Pending", "Running", "Succeeded", "Failed", "Pruned"]


class ConditionType(StrEnum):
    """Condition types of a Sweep."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    BUDGET_EXHAUSTED = "BudgetExhausted"


class Reason(StrEnum):
    """Condition reasons of a Sweep."""

    INVALID_SPEC = "InvalidSpec"
    TRIALS_RUNNING = "TrialsRunning"
    ALL_TRIALS_DONE = "AllTrialsDone"
    ALL_TRIALS_FAILED = "AllTrialsFailed"
    MAX_CREDITS_REACHED = "MaxCreditsReached"


def spec_field_exists(model: type[BaseModel], path: str) -> bool:
    """Whether a dotted camelCase path such as `hyperparameters.learningRate` names a field."""
    current: type[BaseModel] | None = model
    for segment in path.split("."):
        if current is None:
            return False
        fields = {info.alias or name: info for name, info in current.model_fields.items()}
        if segment not in fields:
            return False
        candidates = (fields[segment].annotation, *get_args(fields[segment].annotation))
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return True


class Parameter(SpecModel):
    """One searched parameter of the TrainingRun spec."""

    name: str = Field(
        pattern=r"^[a-zA-Z][a-zA-Z0-9]*(\.[a-zA-Z][a-zA-Z0-9]*)*$",
        description="Path in the TrainingRun spec, e.g. `hyperparameters.learningRate`.",
    )
    type: Literal["double", "int", "categorical"] = Field(description="Kind of values.")
    min: DecimalStr | None = Field(None, description="Lower bound (double, int).")
    max: DecimalStr | None = Field(None, description="Upper bound (double, int).")
    log: bool = Field(False, description="Sample on a log scale (double, int).")
    values: list[str] = Field(
        default_factory=list, description="Choices (categorical), or explicit grid points."
    )

    @model_validator(mode="after")
    def _bounds_or_values(self) -> Self:
        if not spec_field_exists(TrainingRunSpec, self.name):
            raise ValueError(f"parameters.name: {self.name} is not a TrainingRun spec field")
        if self.type == "categorical":
            if not self.values:
                raise ValueError(f"parameters[{self.name}].values: required for categorical")
            return self
        if self.values:
            return self
        if self.min is None or self.max is None:
            raise ValueError(f"parameters[{self.name}]: min and max are required for {self.type}")
        if float(self.min) >= float(self.max):
            raise ValueError(f"parameters[{self.name}]: min must be below max")
        if self.log and float(self.min) <= 0:
            raise ValueError(f"parameters[{self.name}].min: must be above 0 with log")
        return self


class Objective(SpecModel):
    """What the search optimizes."""

    metric: str = Field("validationReward", min_length=1, description="TrainingRun metric.")
    direction: Literal["maximize", "minimize"] = Field("maximize", description="Goal.")


class SweepEarlyStopping(SpecModel):
    """Pruning of unpromising trials."""

    algorithm: Literal["none", "median", "asha"] = Field("none", description="Pruning rule.")
    min_steps: int = Field(1, ge=1, description="Steps a trial runs before it may be pruned.")


class Promote(SpecModel):
    """Deploy the best trial's model."""

    model_deployment: Name = Field(description="ModelDeployment to create or update.")


class SweepSpec(SpecModel):
    """Desired state of a Sweep."""

    training_run_template: TrainingRunSpec = Field(
        description="TrainingRun spec each trial starts from."
    )
    parameters: list[Parameter] = Field(min_length=1, description="Searched parameters.")
    algorithm: Literal["grid", "random", "bayesian"] = Field(
        "random", description="Search algorithm."
    )
    objective: Objective = Field(default_factory=Objective, description="What to optimize.")
    max_trials: int = Field(10, ge=1, le=1000, description="Trials in total.")
    parallelism: int = Field(
        3, ge=1, le=MAX_PARALLELISM, description="Trials running at the same time."
    )
    early_stopping: SweepEarlyStopping = Field(
        default_factory=SweepEarlyStopping, description="Pruning of weak trials."
    )
    max_credits: int | None = Field(None, ge=1, description="Stop starting trials past this.")
    seed: int | None = Field(None, ge=0, description="Seed of the search; default: random.")
    promote: Promote | None = Field(None, description="Deploy the best trial's model.")

    @model_validator(mode="after")
    def _grid_needs_points(self) -> Self:
        if self.algorithm == "grid":
            for parameter in self.parameters:
                if parameter.type == "double" and not parameter.values:
                    raise ValueError(
                        f"parameters[{parameter.name}].values: grid search needs explicit values"
                    )
        names = [parameter.name for parameter in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError("parameters: each name may appear once")
        return self


class Trial(StatusModel):
    """One TrainingRun of the search."""

    name: str = Field(description="TrainingRun name.")
    parameters: dict[str, str] = Field(default_factory=dict, description="Values tried.")
    state: TrialState = "Pending"
    objective: float | None = Field(None, description="Objective metric reached.")
    credits: int = 0


class SweepStatus(StatusModel):
    """Observed state of a Sweep."""

    observed_generation: int | None = None
    phase: Literal["Pending", "Running", "Succeeded", "Failed"] | None = Field(
        None, description="Short summary; conditions are the truth."
    )
    conditions: Conditions = Field(default_factory=list)
    trials: list[Trial] = Field(default_factory=list)
    best_trial: str | None = Field(None, description="Name of the best trial so far.")
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    pruned: int = 0
    credits_used: int = 0


class Sweep(KubeObject):
    """A Sweep object as stored in the cluster."""

    api_version: Literal["arclight.dev/v1alpha1"] = API_VERSION
    kind: Literal["Sweep"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SweepSpec
    status: SweepStatus | None = None


PRINTER_COLUMNS = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Running", "type": "integer", "jsonPath": ".status.running"},
    {"name": "Succeeded", "type": "integer", "jsonPath": ".status.succeeded"},
    {"name": "Best", "type": "string", "jsonPath": ".status.bestTrial"},
    {"name": "Credits", "type": "integer", "jsonPath": ".status.creditsUsed"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
SCALE = {"specReplicasPath": ".spec.parallelism", "statusReplicasPath": ".status.running"}
