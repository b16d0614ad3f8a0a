"""TrainerConfig: the JSON document the operator writes to `<run>-config` (see docs/architecture.md)."""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True,
                              extra="forbid")


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


class RunRef(_Model):
    name: str
    namespace: str = "default"
    uid: str | None = None
    attempt: int = Field(1, ge=1)


class DatasetSpec(_Model):
    uri: str
    format: Literal["auto", "csv", "json", "jsonl", "parquet"] = "auto"
    validation_fraction: str = "0.1"
    credentials_dir: str | None = None


class ModelSpec(_Model):
    base: str = "smollm2-135m-instruct"
    adapter: Literal["lora", "last-layers", "full"] = "lora"


class EarlyStopping(_Model):
    metric: str = "reward"
    patience: int = Field(3, ge=1)
    min_delta: str = "0"


class Hyperparameters(_Model):
    learning_rate: str = "1e-4"
    batch_size: int = Field(4, ge=1)
    group_size: int = Field(4, ge=1)
    max_steps: int | None = Field(None, ge=1)
    epochs: int | None = Field(None, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    scheduler: Literal["constant", "linear", "cosine"] = "constant"
    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    warmup_steps: int = Field(0, ge=0)
    kl_coef: str = "0.02"
    clip_range: str = "0.2"
    reward_scale: str = "1"
    reward_clip: str = "5"
    early_stopping: EarlyStopping | None = None
    max_new_tokens: int = Field(48, ge=1, le=4096)
    temperature: str = "1.0"

    @field_validator("learning_rate", "kl_coef", "clip_range", "reward_scale", "reward_clip",
                     "temperature")
    @classmethod
    def _decimal(cls, value: str) -> str:
        decimal_value(value)
        return value

    def total_steps(self, train_size: int) -> int:
        """Optimizer steps for this run: maxSteps, else epochs over the training split."""
        if self.max_steps is not None:
            return self.max_steps
        epochs = self.epochs or 1
        return max(1, math.ceil(epochs * train_size / self.batch_size))


class RewardComponent(_Model):
    name: Literal["taskSuccess", "format", "latency", "cost", "safety", "custom"]
    weight: str = "1"
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("weight")
    @classmethod
    def _decimal(cls, value: str) -> str:
        decimal_value(value)
        return value


class RewardSpec(_Model):
    components: list[RewardComponent] = Field(default_factory=list)


class GpuSpec(_Model):
    type: str = "none"
    count: int = Field(0, ge=0)


class Resources(_Model):
    gpu: GpuSpec = GpuSpec()
    nodes: int = Field(1, ge=1)


class Rollouts(_Model):
    workers: int = Field(2, ge=1)
    concurrency: int = Field(4, ge=1)
    timeout_seconds: int = Field(120, ge=1)


class Checkpoint(_Model):
    every_steps: int = Field(0, ge=0)
    keep: int = Field(2, ge=1)
    dir: str = "/artifacts"


class MlflowSpec(_Model):
    tracking_uri: str
    experiment: str = "arclight"
    registered_model: str | None = None


class Tracking(_Model):
    mlflow: MlflowSpec | None = None


class ReportTarget(_Model):
    config_map: str
    namespace: str


class CustomAgent(_Model):
    image: str | None = None
    entrypoint: str
    reward: str | None = None
    env: list[dict[str, Any]] = Field(default_factory=list)


class TrainerConfig(_Model):
    api_version: Literal["arclight.dev/v1alpha1"] = "arclight.dev/v1alpha1"
    kind: Literal["TrainerConfig"] = "TrainerConfig"
    run: RunRef
    template: str | None = None
    task_type: str | None = None
    agent: CustomAgent | None = None
    dataset: DatasetSpec
    model: ModelSpec = ModelSpec()
    algorithm: Literal["grpo", "ppo", "apo", "sft"] = "grpo"
    backend: Literal["cpu", "verl"] = "cpu"
    hyperparameters: Hyperparameters = Hyperparameters()
    reward: RewardSpec = RewardSpec()
    resources: Resources = Resources()
    rollouts: Rollouts = Rollouts()
    checkpoint: Checkpoint = Checkpoint()
    resume_from: str | None = None
    tracking: Tracking = Tracking()
    report: ReportTarget | None = None
    seed: int = 42

    def reward_components(self, template_default: list[dict]) -> list[dict]:
        """The reward components as plain dicts; the template default when none are given."""
        if not self.reward.components:
            return [dict(c) for c in template_default]
        return [c.model_dump() for c in self.reward.components]


class ConfigError(ValueError):
    """The TrainerConfig file is missing or invalid."""


def parse_config(data: dict[str, Any]) -> TrainerConfig:
    """Validate a TrainerConfig document; raise ConfigError naming every bad field."""
    try:
        config = TrainerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid TrainerConfig: {problems}") from exc
    if config.template is None and config.agent is None:
        raise ConfigError("invalid TrainerConfig: one of template or agent is required")
    try:
        fraction = decimal_value(config.dataset.validation_fraction)
    except ValueError as exc:
        raise ConfigError(f"invalid TrainerConfig: dataset.validationFraction: {exc}") from exc
    if not 0 < fraction < 1:
        raise ConfigError("invalid TrainerConfig: dataset.validationFraction must be in (0, 1)")
    return config


def load_config(path: str | Path) -> TrainerConfig:
    """Read and validate the TrainerConfig JSON file at `path`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read TrainerConfig {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"TrainerConfig {path} must hold a JSON object")
    return parse_config(data)
