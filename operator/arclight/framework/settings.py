"""Operator settings from the environment (``ARCLIGHT_*``), read once by the startup handler.

A wrong value stops the operator with one message naming the variable (fail fast); nothing
reads the environment at import time.
"""
from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

PREFIX = "ARCLIGHT_"


class SettingsError(ValueError):
    """The environment does not hold valid operator settings."""


class Settings(BaseModel):
    """Everything the operator is configured with (see the chart's values.yaml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    trainer_image: str = Field("docker.io/arclight/trainer:dev", min_length=1,
                               description="Image of the trainer Job (fully qualified).")
    artifacts_claim: str | None = Field(None, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                                        description="PVC for checkpoints; else an emptyDir.")
    mlflow_uri: str | None = Field(None, pattern=r"^(https?|file)://.+",
                                   description="MLflow tracking URI given to trainers.")
    metrics_port: int = Field(8000, ge=1, le=65535, description="Port of /metrics and /readyz.")
    workers: int = Field(8, ge=1, le=64, description="Parallel reconcile workers.")
    ledger_dsn: SecretStr | None = Field(
        None, description="libpq DSN of the Postgres ledger (from a Secret); unset: no "
        "metering, and CreditBudgets say so.")
    metering_interval: float = Field(30.0, ge=0.5, le=600,
                                     description="Seconds between metering rounds.")
    namespace: str = Field(
        "arclight-system", pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="The operator's own namespace (the chart sets it from the downward API): "
        "where the Secrets a CreditBudget's spec.notify names live.")
    watch_namespaces: tuple[str, ...] = Field(
        (), description="Namespaces watched (kopf --namespace); empty: the whole cluster. "
        "Replicas of a namespaced install peer through a KopfPeering in each.")

    @field_validator("watch_namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``ARCLIGHT_<FIELD>`` variables; raise SettingsError naming the bad variable."""
    environ = os.environ if environ is None else environ
    values = {name: environ[PREFIX + name.upper()] for name in Settings.model_fields
              if environ.get(PREFIX + name.upper(), "") != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{PREFIX}{str(err['loc'][0]).upper()}: {err['msg']}"
                             for err in exc.errors())
        raise SettingsError(f"invalid operator settings: {problems}") from None
