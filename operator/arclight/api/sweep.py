"""Sweep: a hyperparameter search that creates TrainingRuns (short name `sw`)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final, Literal, Self, get_args, get_origin

from pydantic import BaseModel, Field, model_validator

from arclight.api.common import (
    API_VERSION,
    Conditions,
    DecimalStr,
    Figure,
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
TrialState = Literal["Pending", "Running", "Succeeded", "Failed", "Pruned", "Stopped"]
#: Optuna's sampler behind each `algorithm` (bayesian: the Tree-structured Parzen Estimator).
SAMPLERS = {"grid": "GridSampler", "random": "RandomSampler", "bayesian": "TPESampler",
            "nsga2": "NSGAIISampler"}
Algorithm = Literal["grid", "random", "bayesian", "nsga2"]
#: A path segment: a camelCase field, optionally `[key]` picking the list item named `key`.
SEGMENT = r"[a-zA-Z][a-zA-Z0-9]*(\[[A-Za-z0-9_.-]+\])?"
PATH_PATTERN = rf"^{SEGMENT}(\.{SEGMENT})*$"


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
    WARM_START_NOT_FOUND = "WarmStartNotFound"


def split_segment(segment: str) -> tuple[str, str | None]:
    """``components[format]`` -> ``("components", "format")``; ``weight`` -> ``("weight", None)``."""
    if segment.endswith("]") and "[" in segment:
        field, key = segment[:-1].split("[", 1)
        return field, key
    return segment, None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model an annotation holds (directly, optional or as list items)."""
    stack = [annotation]
    while stack:
        candidate = stack.pop()
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
        stack.extend(get_args(candidate))
    return None


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) is list or any(
        get_origin(arg) is list for arg in get_args(annotation))


def spec_field_exists(model: type[BaseModel], path: str) -> bool:
    """Whether a dotted camelCase path such as `hyperparameters.learningRate` or
    `reward.components[format].weight` names a field (`[key]` only on lists of named items)."""
    current: type[BaseModel] | None = model
    for segment in path.split("."):
        if current is None:
            return False
        field, key = split_segment(segment)
        fields = {info.alias or name: info for name, info in current.model_fields.items()}
        if field not in fields:
            return False
        annotation = fields[field].annotation
        current = _model_in(annotation)
        if key is not None and (not _is_list(annotation) or current is None
                                or "name" not in current.model_fields):
            return False
    return True


class Parameter(SpecModel):
    """One searched parameter of the TrainingRun spec."""

    name: str = Field(
        pattern=PATH_PATTERN, max_length=200,
        description="Path in the TrainingRun spec, e.g. `hyperparameters.learningRate`, "
        "`reward.components[format].weight` or `agent.env[PROMPT_STYLE].value` (`[key]` picks "
        "the list item of that name, added when the template lacks it).",
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
        if self.type == "categorical" and not self.values:
            raise ValueError(f"parameters[{self.name}].values: required for categorical")
        if self.values:
            if self.min is not None or self.max is not None or self.log:
                raise ValueError(f"parameters[{self.name}]: set values or min/max (and log), "
                                 "not both")
            if self.type != "categorical":
                number = float if self.type == "double" else int
                for value in self.values:
                    try:
                        number(value)
                    except ValueError:
                        raise ValueError(f"parameters[{self.name}].values: {value!r} is not "
                                         f"a{'n' if self.type == 'int' else ''} {self.type}; "
                                         "use type categorical for text") from None
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

    metric: Literal["validationReward", "successRate"] = Field(
        "validationReward",
        description="Evaluation figure of the trials (status.evaluations of each TrainingRun).")
    direction: Literal["maximize", "minimize"] = Field("maximize", description="Goal.")


class SweepEarlyStopping(SpecModel):
    """Pruning of unpromising trials."""

    algorithm: Literal["none", "median", "asha"] = Field(
        "none", description="Pruning rule: Optuna's MedianPruner or SuccessiveHalvingPruner.")
    min_steps: int = Field(1, ge=1, description="Steps a trial runs before it may be pruned.")
    reduction_factor: int | None = Field(
        None, ge=2, le=10,
        description="asha only (default 3): a trial goes on past a rung when in the top 1/N.")
    startup_trials: int | None = Field(
        None, ge=0, le=100,
        description="median only (default 2): finished trials needed before any is pruned.")

    @model_validator(mode="after")
    def _fields_of_the_rule(self) -> Self:
        only = {"reductionFactor": (self.reduction_factor, "asha"),
                "startupTrials": (self.startup_trials, "median")}
        for alias, (value, rule) in only.items():
            if value is not None and self.algorithm != rule:
                raise ValueError(f"earlyStopping.{alias}: applies to algorithm {rule} only")
        return self

    @property
    def rung_factor(self) -> int:
        """asha's reduction factor (3 unless set)."""
        return self.reduction_factor or 3

    @property
    def startup(self) -> int:
        """median's startup trials (2 unless set)."""
        return 2 if self.startup_trials is None else self.startup_trials


class Promote(SpecModel):
    """Deploy the best trial's model."""

    model_deployment: Name = Field(description="ModelDeployment to create or update.")


class SweepSpec(SpecModel):
    """Desired state of a Sweep."""

    training_run_template: TrainingRunSpec = Field(
        description="TrainingRun spec each trial starts from."
    )
    parameters: list[Parameter] = Field(min_length=1, description="Searched parameters.")
    algorithm: Algorithm = Field(
        "random", description="Search algorithm: grid, random, bayesian (Optuna's TPE) or nsga2."
    )
    objective: Objective = Field(default_factory=Objective, description="What to optimize.")
    max_trials: int = Field(10, ge=1, le=1000, description="Trials in total.")
    parallelism: int = Field(
        3, ge=1, le=MAX_PARALLELISM, description="Trials running at the same time."
    )
    early_stopping: SweepEarlyStopping = Field(
        default_factory=SweepEarlyStopping, description="Pruning of weak trials."
    )
    max_credits: int | None = Field(
        None, ge=1, description="Credits the trials may spend; no trial starts that would pass it.")
    budget_policy: Literal["finish", "stop"] | None = Field(
        None, description="With maxCredits (default finish): let running trials finish, or "
        "stop them (their checkpoints are kept).")
    warm_start_from: list[Name] = Field(
        default_factory=list, max_length=10,
        description="Sweeps of this namespace whose finished trials seed the search.")
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
        if self.budget_policy is not None and self.max_credits is None:
            raise ValueError("budgetPolicy: applies with maxCredits only; set maxCredits")
        return self


class Trial(StatusModel):
    """One TrainingRun of the search."""

    name: str = Field(description="TrainingRun name.")
    number: int = Field(0, description="Trial number (the name's suffix).")
    parameters: dict[str, str] = Field(default_factory=dict, description="Values tried.")
    state: TrialState = "Pending"
    objective: Figure | None = Field(None, description="Objective reached (last evaluation).")
    step: int | None = Field(None, description="Optimizer steps reached.")
    credits: int = 0
    reason: str | None = Field(None, description="Why it was pruned, stopped, failed or waits.")


class SweepStatus(StatusModel):
    """Observed state of a Sweep."""

    observed_generation: int | None = None
    phase: Literal["Pending", "Running", "Succeeded", "Failed"] | None = Field(
        None, description="Short summary; conditions are the truth."
    )
    conditions: Conditions = Field(default_factory=list)
    trials: list[Trial] = Field(default_factory=list)
    best_trial: str | None = Field(None, description="Name of the best trial so far.")
    best_objective: Figure | None = Field(None, description="Its objective.")
    best_parameters: dict[str, str] | None = Field(None, description="Its parameters.")
    total: int = Field(0, description="Trials the search will run (maxTrials, or the grid).")
    done: int = Field(0, description="Trials finished (succeeded, failed, pruned, stopped).")
    progress: str | None = Field(None, description="done/total, for kubectl.")
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    pruned: int = 0
    stopped: int = 0
    credits_used: int = Field(0, description="Credits the trials spent (ledger and live).")
    promoted: str | None = Field(None, description="ModelDeployment serving the best trial.")


class Sweep(KubeObject):
    """A Sweep object as stored in the cluster."""

    api_version: Literal["arclight.dev/v1alpha1"] = API_VERSION
    kind: Literal["Sweep"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: SweepSpec
    status: SweepStatus | None = None


PRINTER_COLUMNS = [
    {"name": "Algorithm", "type": "string", "jsonPath": ".spec.algorithm"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Trials", "type": "string", "jsonPath": ".status.progress",
     "description": "Trials done/total"},
    {"name": "Running", "type": "integer", "jsonPath": ".status.running"},
    {"name": "Best", "type": "number", "jsonPath": ".status.bestObjective"},
    {"name": "Best Trial", "type": "string", "jsonPath": ".status.bestTrial"},
    {"name": "Credits", "type": "integer", "jsonPath": ".status.creditsUsed"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
SCALE = {"specReplicasPath": ".spec.parallelism", "statusReplicasPath": ".status.running"}
