"""ModelDeployment: serves a trained agent model behind one stable endpoint (short name `md`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, Self

from pydantic import ConfigDict, Field, model_validator

from arclight.api.common import (
    API_VERSION,
    Conditions,
    FractionStr,
    GpuRequest,
    KubeObject,
    Name,
    ObjectMeta,
    Quantity,
    ServingCost,
    SpecModel,
    StatusModel,
    one_of_required,
    require_one_of,
)

KIND: Final = "ModelDeployment"
PLURAL = "modeldeployments"
SINGULAR = "modeldeployment"
SHORT_NAMES = ["md"]
SCOPE = "Namespaced"

MLFLOW_MODEL_PATTERN = r"^models:/[^/@]+(@[A-Za-z0-9_-]+|/[0-9]+)$"
MODEL_URI_PATTERN = r"^(pvc|s3|gs|https|file)://.+$"


class ConditionType(StrEnum):
    """Condition types of a ModelDeployment."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    ROLLED_BACK = "RolledBack"
    DEGRADED = "Degraded"
    BUDGET_EXCEEDED = "BudgetExceeded"


class Reason(StrEnum):
    """Condition reasons of a ModelDeployment."""

    INVALID_SPEC = "InvalidSpec"
    SOURCE_NOT_READY = "SourceNotReady"
    ROLLING_OUT = "RollingOut"
    AVAILABLE = "Available"
    SCALED_TO_ZERO = "ScaledToZero"
    CANARY_STEP = "CanaryStep"
    CANARY_PROMOTED = "CanaryPromoted"
    ANALYSIS_FAILED = "AnalysisFailed"
    MANUAL_ROLLBACK = "ManualRollback"
    REPLICAS_UNAVAILABLE = "ReplicasUnavailable"
    BUDGET_EXHAUSTED = "BudgetExhausted"


class ModelSource(SpecModel):
    """Where the served model comes from: exactly one of trainingRun, mlflowModel, uri."""

    model_config = ConfigDict(
        json_schema_extra=one_of_required("trainingRun", "mlflowModel", "uri")
    )

    training_run: Name | None = Field(
        None, description="A TrainingRun in this namespace; its best checkpoint is served."
    )
    mlflow_model: str | None = Field(
        None,
        pattern=MLFLOW_MODEL_PATTERN,
        description="A registered MLflow model: `models:/NAME@ALIAS` or `models:/NAME/VERSION`.",
    )
    uri: str | None = Field(
        None, pattern=MODEL_URI_PATTERN, description="Model weights at pvc://, s3://, gs://, ..."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        require_one_of(
            "source",
            {"trainingRun": self.training_run, "mlflowModel": self.mlflow_model, "uri": self.uri},
        )
        return self


class ServingResources(SpecModel):
    """Compute per serving replica."""

    gpu: GpuRequest = Field(default_factory=GpuRequest, description="GPUs per replica.")
    cpu: Quantity | None = Field(None, description="CPU request per replica.")
    memory: Quantity | None = Field(None, description="Memory request per replica.")


class Autoscaling(SpecModel):
    """How the replica count follows load."""

    min_replicas: int = Field(
        1, ge=0, description="Fewest replicas; 0 scales to zero (needs KEDA)."
    )
    max_replicas: int = Field(3, ge=1, le=100, description="Most replicas.")
    target_concurrency: int | None = Field(
        None, ge=1, description="In-flight requests per replica to aim for."
    )
    target_cpu_percent: int | None = Field(
        None, alias="targetCPUPercent", ge=1, le=100, description="CPU use per replica to aim for."
    )
    scale_down_delay_seconds: int = Field(
        300, ge=0, description="Wait this long at low load before removing replicas."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.target_concurrency is not None and self.target_cpu_percent is not None:
            raise ValueError("autoscaling: set targetConcurrency or targetCPUPercent, not both")
        if self.min_replicas > self.max_replicas:
            raise ValueError("autoscaling.minReplicas: must not exceed maxReplicas")
        return self


class CanaryAnalysis(SpecModel):
    """Limits a canary must stay within to be promoted; crossing one rolls it back."""

    max_error_rate: FractionStr = Field("0.05", description="Highest share of failed requests.")
    max_p95_latency_ms: int | None = Field(
        None, alias="maxP95LatencyMs", ge=1, description="Highest 95th-percentile latency."
    )


class Canary(SpecModel):
    """Gradual rollout of a new model next to the current one."""

    source: ModelSource = Field(description="The candidate model.")
    weight: int = Field(10, ge=0, le=100, description="Percent of traffic to the candidate.")
    steps: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=list, description="Traffic percents to move through, e.g. [10, 50, 100]."
    )
    analysis: CanaryAnalysis = Field(
        default_factory=CanaryAnalysis, description="Promote or roll back on these limits."
    )

    @model_validator(mode="after")
    def _increasing_steps(self) -> Self:
        if self.steps != sorted(set(self.steps)):
            raise ValueError("canary.steps: must be strictly increasing")
        return self


class RateLimit(SpecModel):
    """Requests allowed through the endpoint."""

    requests_per_second: int = Field(ge=1, description="Sustained requests per second.")
    burst: int | None = Field(None, ge=1, description="Short bursts allowed above the rate.")


class ModelDeploymentSpec(SpecModel):
    """Desired state of a ModelDeployment."""

    source: ModelSource = Field(description="The model to serve.")
    runtime: Literal["auto", "vllm", "transformers", "prompt"] = Field(
        "auto", description="Serving runtime; `auto` picks vllm on GPU, else transformers."
    )
    resources: ServingResources = Field(
        default_factory=ServingResources, description="Compute per replica."
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Replica range.")
    canary: Canary | None = Field(None, description="Roll a new model out gradually.")
    rate_limit: RateLimit | None = Field(None, description="Request rate limit.")
    rollback_to: str | None = Field(
        None, min_length=1, description="Serve this earlier revision instead of the source."
    )


class Revision(StatusModel):
    """One version of the served model."""

    name: str
    source: dict[str, str] = Field(default_factory=dict, description="The source it serves.")
    created_at: datetime | None = None


class TrafficSplit(StatusModel):
    """Share of requests a revision receives."""

    revision: str
    percent: int = Field(ge=0, le=100)


class ServingMetrics(StatusModel):
    """Recent request metrics of the endpoint."""

    requests_per_second: float | None = None
    p95_latency_ms: float | None = Field(None, alias="p95LatencyMs")
    error_rate: float | None = None


class ModelDeploymentStatus(StatusModel):
    """Observed state of a ModelDeployment."""

    observed_generation: int | None = None
    conditions: Conditions = Field(default_factory=list)
    revisions: list[Revision] = Field(default_factory=list)
    current_revision: str | None = None
    canary_revision: str | None = None
    traffic: list[TrafficSplit] = Field(default_factory=list)
    ready_replicas: int = 0
    url: str | None = Field(None, description="The stable endpoint.")
    metrics: ServingMetrics | None = None
    cost: ServingCost | None = Field(
        None, description="What its replicas have cost (all revisions), and per request.")


class ModelDeployment(KubeObject):
    """A ModelDeployment object as stored in the cluster."""

    api_version: Literal["arclight.dev/v1alpha1"] = API_VERSION
    kind: Literal["ModelDeployment"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus | None = None


PRINTER_COLUMNS = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {"name": "Revision", "type": "string", "jsonPath": ".status.currentRevision"},
    {"name": "Canary", "type": "string", "jsonPath": ".status.canaryRevision"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.readyReplicas"},
    {"name": "Credits", "type": "integer", "jsonPath": ".status.cost.credits"},
    {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
