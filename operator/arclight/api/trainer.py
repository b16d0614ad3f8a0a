"""The operator/trainer contract, defined once and imported by both sides (docs/architecture.md).

- `TrainerConfig`: the `config.json` the operator writes to ConfigMap `<run>-config` and the
  trainer reads (camelCase, frozen, unknown keys rejected; values concrete).
- `ExitCode`, `FailureReason`, `TerminationReport`: how the trainer ends, and the JSON it
  writes to `/dev/termination-log` before it exits non-zero.
- `ReportKey` and `REPORT_DOCUMENTS`: the keys of ConfigMap `<run>-report` and the document
  each holds (`ProgressReport`, `TrainingMetrics`, `BestCheckpoint`, `TrainingResult`).
  Readers ignore keys they do not know: the trainer image and the operator upgrade apart.

Pure pydantic: the trainer image installs this package, so nothing here may import
kubernetes, kopf or anything of the operator's runtime.
"""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import IntEnum, StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from arclight.api.common import Figure
from arclight.api.trainingrun import (
    MAX_EVALUATIONS,
    Adapter,
    Algorithm,
    Backend,
    BestCheckpoint,
    DatasetFormat,
    EvaluationPoint,
    EvaluationSeries,
    RewardName,
    RewardStats,
    TemplateName,
    TrainingMetrics,
)

CONFIG_KEY = "config.json"
"""The key of ConfigMap `<run>-config` that holds the TrainerConfig."""
TERMINATION_LOG = "/dev/termination-log"
TERMINATION_MESSAGE_BYTES = 4096
"""The kubelet keeps at most this much of a container's termination message."""
RESUME_LATEST = "latest"
"""`resumeFrom` value: the newest checkpoint under `checkpoint.dir`, or a fresh start when
there is none yet (what an attempt resumed after a suspension passes)."""


def decimal_value(text: str | None, default: float = 0.0) -> float:
    """Parse a decimal string such as "1e-4" into a finite float."""
    if text is None:
        return default
    try:
        value = float(Decimal(str(text)))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"not a decimal number: {text!r}") from exc
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def _decimal(value: str) -> str:
    decimal_value(value)
    return value


DecimalText = Annotated[str, AfterValidator(_decimal)]
"""A finite decimal number written as a string, such as "1e-4"."""


# --- TrainerConfig --------------------------------------------------------------------------


class ConfigModel(BaseModel):
    """Base of the TrainerConfig parts: camelCase, immutable, unknown keys rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


class RunRef(ConfigModel):
    name: str
    namespace: str = "default"
    uid: str | None = None
    attempt: int = Field(1, ge=1)


class DatasetSpec(ConfigModel):
    uri: str
    format: Literal["auto"] | DatasetFormat = "auto"
    validation_fraction: str = "0.1"
    credentials_dir: str | None = None

    @field_validator("validation_fraction")
    @classmethod
    def _open_fraction(cls, value: str) -> str:
        if not 0 < decimal_value(value) < 1:
            raise ValueError(f"must be above 0 and below 1, got {value!r}")
        return value


class ModelSpec(ConfigModel):
    base: str = "smollm2-135m-instruct"
    adapter: Adapter = "lora"


class EarlyStopping(ConfigModel):
    metric: str = "reward"
    patience: int = Field(3, ge=1)
    min_delta: DecimalText = "0"


class Hyperparameters(ConfigModel):
    learning_rate: DecimalText = "1e-4"
    batch_size: int = Field(4, ge=1)
    group_size: int = Field(4, ge=1)
    max_steps: int | None = Field(None, ge=1)
    epochs: int | None = Field(None, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    scheduler: Literal["constant", "linear", "cosine"] = "constant"
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    warmup_steps: int = Field(0, ge=0)
    kl_coef: DecimalText = "0.02"
    clip_range: DecimalText = "0.2"
    reward_scale: DecimalText = "1"
    reward_clip: DecimalText = "5"
    early_stopping: EarlyStopping | None = None
    max_new_tokens: int = Field(48, ge=1, le=4096)
    temperature: DecimalText = "1.0"

    def total_steps(self, train_size: int) -> int:
        """Optimizer steps for this run: maxSteps, else epochs over the training split."""
        if self.max_steps is not None:
            return self.max_steps
        epochs = self.epochs or 1
        return max(1, math.ceil(epochs * train_size / self.batch_size))


class RewardComponent(ConfigModel):
    name: RewardName
    weight: DecimalText = "1"
    params: dict[str, Any] = Field(default_factory=dict)


class RewardSpec(ConfigModel):
    components: list[RewardComponent] = Field(default_factory=list)


class GpuSpec(ConfigModel):
    type: str = "none"
    count: int = Field(0, ge=0)


class Resources(ConfigModel):
    gpu: GpuSpec = Field(default_factory=GpuSpec)
    nodes: int = Field(1, ge=1)


class Rollouts(ConfigModel):
    workers: int = Field(2, ge=1)
    concurrency: int = Field(4, ge=1, description="Rollouts at once per worker.")
    timeout_seconds: int = Field(120, ge=1)
    retries: int = Field(1, ge=0)

    @property
    def total(self) -> int:
        """Rollouts at once over all workers."""
        return self.workers * self.concurrency


class Evaluation(ConfigModel):
    every_steps: int = Field(0, ge=0, description="Validation every N steps besides before/after.")


class Checkpoint(ConfigModel):
    every_steps: int = Field(0, ge=0)
    keep: int = Field(2, ge=1)
    dir: str = "/artifacts"


class MlflowSpec(ConfigModel):
    tracking_uri: str
    experiment: str = "arclight"
    registered_model: str | None = None


class Tracking(ConfigModel):
    mlflow: MlflowSpec | None = None


class ReportTarget(ConfigModel):
    config_map: str
    namespace: str


class CustomAgent(ConfigModel):
    image: str | None = None
    entrypoint: str
    reward: str | None = None
    env: list[dict[str, Any]] = Field(default_factory=list)


class TrainerConfig(ConfigModel):
    """`config.json`: everything one attempt of a run needs, with no `auto` left."""

    api_version: Literal["arclight.dev/v1alpha1"] = "arclight.dev/v1alpha1"
    kind: Literal["TrainerConfig"] = "TrainerConfig"
    run: RunRef
    template: TemplateName | None = None
    task_type: str | None = None
    agent: CustomAgent | None = None
    dataset: DatasetSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    algorithm: Algorithm = "grpo"
    backend: Backend = "cpu"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    reward: RewardSpec = Field(default_factory=RewardSpec)
    resources: Resources = Field(default_factory=Resources)
    rollouts: Rollouts = Field(default_factory=Rollouts)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    evaluation: Evaluation = Field(default_factory=Evaluation)
    resume_from: str | None = None
    tracking: Tracking = Field(default_factory=Tracking)
    report: ReportTarget | None = None
    seed: int = 42

    @model_validator(mode="after")
    def _template_or_agent(self) -> Self:
        if self.template is None and self.agent is None:
            raise ValueError("one of template or agent is required")
        return self


# --- how the trainer ends -------------------------------------------------------------------


class FailureReason(StrEnum):
    """How the trainer ended, when not with success: `reason` of its TerminationReport. Each
    exits with the ExitCode of the same name (`exit_code`). All are failures it classified
    but PREEMPTED: told to stop (SIGTERM), it saved a checkpoint of its last step first."""

    DATASET_INVALID = "DatasetInvalid"
    DIVERGED = "Diverged"
    REWARD_ERROR = "RewardError"
    OUT_OF_MEMORY = "OutOfMemory"
    CONFIG_INVALID = "ConfigInvalid"
    ROLLOUTS_FAILED = "RolloutsFailed"
    PREEMPTED = "Preempted"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode[self.name]


class ExitCode(IntEnum):
    """The trainer container's exit code."""

    SUCCEEDED = 0
    ERROR = 1  # an unclassified failure (an uncaught exception exits 1)
    DATASET_INVALID = 2
    DIVERGED = 3
    REWARD_ERROR = 4
    OUT_OF_MEMORY = 5  # a caught CUDA or CPU allocation failure
    CONFIG_INVALID = 6  # an invalid TrainerConfig, or one naming what the trainer lacks
    ROLLOUTS_FAILED = 7  # every rollout of a batch failed
    PREEMPTED = 8  # stopped on SIGTERM (a Job suspended or deleted) after checkpointing
    KILLED = 137  # 128 + SIGKILL, e.g. the kernel's OOM killer (reason OOMKilled); never
    #               exited by the trainer itself

    @property
    def reason(self) -> FailureReason | None:
        """The classified failure this code stands for (None for SUCCEEDED, ERROR, KILLED)."""
        return FailureReason.__members__.get(self.name)


class TerminationReport(BaseModel):
    """The JSON object the trainer writes to `/dev/termination-log` when it fails or is
    preempted."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    reason: str = Field("", description="A FailureReason.")
    message: str = ""
    suggestions: list[str] = Field(default_factory=list)

    def to_json(self) -> str:
        """The JSON text within TERMINATION_MESSAGE_BYTES: the kubelet would cut a longer one
        into invalid JSON. The message is shortened (after dropping the suggestions when
        they take more than half of the room)."""
        text = self.model_dump_json()
        if len(text.encode()) <= TERMINATION_MESSAGE_BYTES:
            return text
        report = self
        if len(self.model_copy(update={"message": ""}).model_dump_json().encode()) > (
                TERMINATION_MESSAGE_BYTES // 2):
            report = report.model_copy(update={"suggestions": []})
        message = report.message[:TERMINATION_MESSAGE_BYTES]
        while True:  # a character takes 1 to 6 bytes in JSON: cut at most what is over
            text = report.model_copy(update={"message": message + "..."}).model_dump_json()
            over = len(text.encode()) - TERMINATION_MESSAGE_BYTES
            if over <= 0 or not message:
                return text
            message = message[: len(message) - max(1, over // 6)]


# --- the report channel ---------------------------------------------------------------------


class ReportKey(StrEnum):
    """Keys of ConfigMap `<run>-report`; each holds one JSON document."""

    PROGRESS = "progress"
    METRICS = "metrics"
    BEST_CHECKPOINT = "bestCheckpoint"
    EVALUATIONS = "evaluations"
    RESULT = "result"


class ReportDocument(BaseModel):
    """Base of the report documents: camelCase; unknown keys are ignored when read."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ProgressReport(ReportDocument):
    """`progress`: how far training is (the operator adds `percent` in status.progress)."""

    step: int = Field(0, description="Optimizer steps done.")
    total_steps: int | None = Field(None, description="Optimizer steps planned.")
    epoch: int | None = Field(None, description="Current pass over the dataset.")
    eta_seconds: int | None = Field(None, description="Estimated seconds left.")
    updated_at: datetime | None = Field(None, description="When the trainer last reported.")


class TrainingResult(ReportDocument):
    """`result`: written once, when training finished."""

    validation_reward_before: Figure | None = None
    validation_reward_after: Figure | None = None
    model_uri: str | None = None
    best_prompt: str | None = None


REPORT_DOCUMENTS: dict[ReportKey, type[BaseModel]] = {
    ReportKey.PROGRESS: ProgressReport,
    ReportKey.METRICS: TrainingMetrics,
    ReportKey.BEST_CHECKPOINT: BestCheckpoint,
    ReportKey.EVALUATIONS: EvaluationSeries,
    ReportKey.RESULT: TrainingResult,
}
"""The document model of each report key. `metrics` and `bestCheckpoint` are exactly the
status models of arclight.api.trainingrun (status.metrics, status.bestCheckpoint,
status.evaluations)."""

__all__ = [
    "CONFIG_KEY",
    "MAX_EVALUATIONS",
    "REPORT_DOCUMENTS",
    "RESUME_LATEST",
    "TERMINATION_LOG",
    "TERMINATION_MESSAGE_BYTES",
    "BestCheckpoint",
    "Checkpoint",
    "ConfigModel",
    "CustomAgent",
    "DatasetSpec",
    "EarlyStopping",
    "EvaluationPoint",
    "EvaluationSeries",
    "ExitCode",
    "FailureReason",
    "GpuSpec",
    "Hyperparameters",
    "MlflowSpec",
    "ModelSpec",
    "ProgressReport",
    "ReportDocument",
    "ReportKey",
    "ReportTarget",
    "Resources",
    "RewardComponent",
    "RewardSpec",
    "RewardStats",
    "Rollouts",
    "RunRef",
    "TerminationReport",
    "Tracking",
    "TrainerConfig",
    "TrainingMetrics",
    "TrainingResult",
    "decimal_value",
]
