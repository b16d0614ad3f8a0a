"""TrainingRun: one reinforcement-learning training job for an agent (short name `tr`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal, Self, get_args

from pydantic import ConfigDict, Field, field_validator, model_validator

from arclight.api.common import (
    API_VERSION,
    LABEL_VALUE_PATTERN,
    AutoCount,
    AutoDecimal,
    AutoInt,
    Conditions,
    Cost,
    DecimalStr,
    Entrypoint,
    EnvVar,
    Figure,
    GpuRequest,
    KubeObject,
    Name,
    ObjectMeta,
    Quantity,
    SecretRef,
    SpecModel,
    StatusModel,
    Toleration,
    WebhookTarget,
    one_of_required,
    require_one_of,
)

KIND: Final = "TrainingRun"
PLURAL = "trainingruns"
SINGULAR = "trainingrun"
SHORT_NAMES = ["tr"]
SCOPE = "Namespaced"

TemplateName = Literal[
    "customer-support",
    "coding-assistant",
    "sql-agent",
    "research-assistant",
    "content-writer",
    "task-planner",
    "math-solver",
    "document-qa",
    "email-responder",
    "meeting-scheduler",
]
TEMPLATES: tuple[str, ...] = get_args(TemplateName)
DatasetFormat = Literal["csv", "json", "jsonl", "parquet"]
Algorithm = Literal["grpo", "ppo", "apo", "sft"]
Adapter = Literal["lora", "last-layers", "full"]
Backend = Literal["cpu", "verl"]
RewardName = Literal["taskSuccess", "format", "latency", "cost", "safety", "custom"]
Phase = Literal["Pending", "Admitted", "Running", "Succeeded", "Failed", "Suspended"]

DATASET_URI_PATTERN = r"^(s3|gs|https|pvc|configmap|sample)://.+$"
OPEN_FRACTION_PATTERN = r"^0?\.[0-9]*[1-9][0-9]*$"
CHECKPOINT_URI_PATTERN = r"^pvc://[a-z0-9]([-a-z0-9]*[a-z0-9])?(/.*)?$"


class ConditionType(StrEnum):
    """Condition types of a TrainingRun."""

    ADMITTED = "Admitted"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    BUDGET_EXCEEDED = "BudgetExceeded"
    DEGRADED = "Degraded"


class Reason(StrEnum):
    """Condition reasons and diagnosis reasons of a TrainingRun."""

    INVALID_SPEC = "InvalidSpec"
    RESOLVED = "Resolved"
    QUEUED = "Queued"
    BUDGET_AVAILABLE = "BudgetAvailable"
    BUDGET_NOT_FOUND = "BudgetNotFound"
    BUDGET_EXHAUSTED = "BudgetExhausted"
    BUDGET_CONFLICT = "BudgetConflict"
    CONCURRENCY_LIMIT = "ConcurrencyLimit"
    PREEMPTED = "Preempted"
    SUSPENDED = "Suspended"
    STARTING = "Starting"
    TRAINING = "Training"
    RETRYING = "Retrying"
    COMPLETED = "Completed"
    OUT_OF_MEMORY = "OutOfMemory"
    DIVERGED = "Diverged"
    DATASET_INVALID = "DatasetInvalid"
    IMAGE_PULL_FAILED = "ImagePullFailed"
    EVICTED = "Evicted"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    REWARD_ERROR = "RewardError"
    CRASH_LOOP = "CrashLoop"
    UNKNOWN_ERROR = "UnknownError"


# --- spec -----------------------------------------------------------------------------------


class AgentSpec(SpecModel):
    """A custom agent used instead of a template."""

    image: str = Field(min_length=1, description="Container image that holds the agent code.")
    entrypoint: Entrypoint = Field(description="The agent rollout function as `module:function`.")
    reward: Entrypoint | None = Field(
        None, description="Reward function as `module:function`; default: the reward components."
    )
    env: list[EnvVar] = Field(
        default_factory=list, description="Environment variables for the agent processes."
    )


class DatasetSpec(SpecModel):
    """Where the training data comes from."""

    uri: str | None = Field(
        None,
        pattern=DATASET_URI_PATTERN,
        description=(
            "s3://, gs://, https://, pvc://CLAIM/PATH, configmap://NAME/KEY or sample://TEMPLATE;"
            " default: the template's sample dataset."
        ),
    )
    format: Literal["auto", "csv", "json", "jsonl", "parquet"] = Field(
        "auto", description="File format; `auto` guesses from the URI extension."
    )
    validation_fraction: str = Field(
        "0.1",
        pattern=OPEN_FRACTION_PATTERN,
        description='Share of rows held out for validation, above 0 and below 1, e.g. "0.1".',
    )
    secret_ref: SecretRef | None = Field(
        None, description="Secret with credentials for the dataset location."
    )


class ModelSpec(SpecModel):
    """The base model and how it is fine-tuned."""

    base: str = Field(
        "auto", min_length=1, description="`auto`, a model id, or a URI of model weights."
    )
    adapter: Literal["auto", "lora", "full"] = Field(
        "auto", description="`lora` trains a low-rank adapter, `full` all weights."
    )


class EarlyStopping(SpecModel):
    """Stop training when a metric stops improving."""

    metric: str = Field("validationReward", min_length=1, description="Metric to watch.")
    patience: int = Field(3, ge=1, description="Evaluations without improvement before stop.")
    min_delta: DecimalStr = Field("0", description="Smallest change that counts as improvement.")


class Hyperparameters(SpecModel):
    """Training hyperparameters; each defaults to `auto`."""

    learning_rate: AutoDecimal = Field("auto", description='Learning rate, e.g. "1e-5".')
    batch_size: AutoInt = Field("auto", description="Prompts per optimizer step.")
    max_steps: AutoInt = Field("auto", description="Optimizer steps; set this or epochs.")
    epochs: AutoInt = Field("auto", description="Passes over the dataset; set this or maxSteps.")
    gradient_accumulation: AutoInt = Field(
        "auto", description="Micro-batches accumulated per optimizer step."
    )
    scheduler: Literal["auto", "constant", "linear", "cosine"] = Field(
        "auto", description="Learning-rate schedule."
    )
    optimizer: Literal["auto", "adamw", "adam", "sgd"] = Field("auto", description="Optimizer.")
    warmup_steps: AutoCount = Field("auto", description="Steps of linear learning-rate warmup.")
    kl_coef: AutoDecimal = Field("auto", description="KL penalty against the base model.")
    reward_scale: AutoDecimal = Field("auto", description="Factor applied to every reward.")
    reward_clip: AutoDecimal = Field("auto", description="Rewards are clipped to ±this value.")
    early_stopping: EarlyStopping | None = Field(
        None, description="Stop early when a metric plateaus; default: off."
    )

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> Self:
        if self.max_steps != "auto" and self.epochs != "auto":
            raise ValueError("hyperparameters: set maxSteps or epochs, not both")
        return self


class RewardComponent(SpecModel):
    """One weighted term of the reward."""

    name: RewardName = Field(description="Which reward term.")
    weight: DecimalStr = Field("1", description='Weight of this term, e.g. "0.5".')
    params: dict[str, Any] = Field(
        default_factory=dict, description="Free-form settings of this term."
    )


class RewardSpec(SpecModel):
    """How rollouts are scored."""

    components: list[RewardComponent] = Field(
        default_factory=list, description="Weighted reward terms; default: the template's."
    )

    @field_validator("components")
    @classmethod
    def _unique_names(cls, components: list[RewardComponent]) -> list[RewardComponent]:
        names = [component.name for component in components]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"reward.components: duplicate name {', '.join(duplicates)}")
        return components


class Resources(SpecModel):
    """Compute for the trainer."""

    gpu: GpuRequest = Field(default_factory=GpuRequest, description="GPUs per node.")
    cpu: Quantity | None = Field(None, description="CPU request per node, e.g. `2` or `500m`.")
    memory: Quantity | None = Field(None, description="Memory request per node, e.g. `8Gi`.")
    nodes: int = Field(1, ge=1, le=64, description="Nodes; more than 1 trains multi-node.")
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Node labels the trainer pods must match."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list, description="Taints the trainer pods tolerate."
    )


class Rollouts(SpecModel):
    """How agent rollouts are run."""

    workers: AutoInt = Field("auto", description="Rollout worker processes.")
    concurrency: AutoInt = Field(
        "auto", description="Concurrent rollouts per worker (workers x concurrency in all)."
    )
    timeout_seconds: int = Field(120, ge=1, description="Time limit of one rollout.")
    retries: int = Field(
        1,
        ge=0,
        le=5,
        description="Times a crashed or timed-out rollout runs again, in a fresh agent "
        "process; when they are spent its whole group is dropped from the step.",
    )


class Evaluation(SpecModel):
    """When the policy is scored on the held-out validation split (greedy decoding)."""

    every_steps: int = Field(
        0,
        ge=0,
        description="Also evaluate every N steps (status.metrics.validationReward is the "
        "latest); 0: only before and after training.",
    )


class Checkpoint(SpecModel):
    """When and where checkpoints are kept."""

    every_steps: AutoInt = Field("auto", description="Save a checkpoint every N steps.")
    keep: int = Field(2, ge=1, description="Checkpoints kept (the best is always kept).")
    uri: str | None = Field(
        None,
        pattern=CHECKPOINT_URI_PATTERN,
        description="pvc://CLAIM/PATH; default: the platform's artifacts volume.",
    )


class Retry(SpecModel):
    """What happens when an attempt fails."""

    max_attempts: int = Field(2, ge=1, le=10, description="Attempts in total, the first included.")
    auto_remediate: bool = Field(
        True,
        description=(
            "Apply the suggested fix (smaller batches on out-of-memory, lower learning rate"
            " on divergence) and resume from the last checkpoint."
        ),
    )


class MlflowTracking(SpecModel):
    """Where the run is recorded in MLflow."""

    experiment: str | None = Field(None, description="Experiment name; default: the namespace.")
    registered_model: str | None = Field(
        None, description="Register the final model under this name."
    )


class Tracking(SpecModel):
    """Experiment tracking."""

    mlflow: MlflowTracking | None = Field(None, description="Log to the platform's MLflow.")


class Deploy(SpecModel):
    """Serve the model when the run succeeds."""

    enabled: bool = Field(False, description="Create or update a ModelDeployment on success.")
    model_deployment: Name | None = Field(
        None, description="ModelDeployment name; default: the run's name."
    )


class RunNotification(WebhookTarget):
    """A webhook called on run events."""

    events: list[Literal["Succeeded", "Failed", "BudgetWarning"]] = Field(
        default_factory=lambda: list(get_args(Literal["Succeeded", "Failed", "BudgetWarning"])),
        description="Events that trigger the webhook.",
    )


class TrainingRunSpec(SpecModel):
    """Desired state of a TrainingRun: everything but template or agent may be left `auto`."""

    model_config = ConfigDict(json_schema_extra=one_of_required("template", "agent"))

    template: TemplateName | None = Field(
        None, description="Built-in agent with its reward and sample dataset; or set agent."
    )
    agent: AgentSpec | None = Field(None, description="A custom agent; or set template.")
    dataset: DatasetSpec = Field(default_factory=DatasetSpec, description="Training data.")
    model: ModelSpec = Field(default_factory=ModelSpec, description="Base model and adapter.")
    algorithm: Literal["auto", "grpo", "ppo", "apo", "sft"] = Field(
        "auto", description="RL algorithm; `auto` picks grpo."
    )
    hyperparameters: Hyperparameters = Field(
        default_factory=Hyperparameters, description="Training hyperparameters."
    )
    reward: RewardSpec = Field(default_factory=RewardSpec, description="Reward terms.")
    resources: Resources = Field(default_factory=Resources, description="Compute.")
    rollouts: Rollouts = Field(default_factory=Rollouts, description="Rollout workers.")
    checkpoint: Checkpoint = Field(default_factory=Checkpoint, description="Checkpoints.")
    evaluation: Evaluation = Field(
        default_factory=Evaluation, description="Validation during training."
    )
    retry: Retry = Field(default_factory=Retry, description="Retries and automatic fixes.")
    budget_ref: Name | None = Field(
        None, description="CreditBudget to charge; default: the one selecting this namespace."
    )
    queue_name: str | None = Field(
        None, min_length=1, max_length=63, pattern=LABEL_VALUE_PATTERN,
        description="Kueue LocalQueue; the trainer then waits for admission.",
    )
    tracking: Tracking = Field(default_factory=Tracking, description="Experiment tracking.")
    deploy: Deploy = Field(default_factory=Deploy, description="Deploy the model on success.")
    notify: list[RunNotification] = Field(default_factory=list, description="Webhooks.")
    suspend: bool = Field(False, description="Pause the run (its pods are deleted).")
    active_deadline_seconds: int | None = Field(
        None, ge=1, description="Fail an attempt that runs longer than this."
    )
    ttl_seconds_after_finished: int | None = Field(
        None, ge=0, description="Delete the run this long after it finished."
    )

    @model_validator(mode="after")
    def _template_or_agent(self) -> Self:
        require_one_of("spec", {"template": self.template, "agent": self.agent})
        if self.agent is not None and self.dataset.uri is None:
            raise ValueError("dataset.uri: required with a custom agent (no sample dataset)")
        return self


# --- status ---------------------------------------------------------------------------------


class ResolvedDataset(StatusModel):
    """The dataset the run uses."""

    uri: str = Field(description="Dataset location.")
    format: DatasetFormat = Field(description="File format.")
    size: int | None = Field(None, description="Rows, when known before training.")
    validation_fraction: str = Field(description="Share held out for validation.")


class ResolvedModel(StatusModel):
    """The model the run trains."""

    base: str = Field(description="Base model id or URI.")
    adapter: Adapter = Field(description="lora, last-layers or full.")


class ResolvedHyperparameters(StatusModel):
    """The concrete hyperparameters."""

    learning_rate: str
    batch_size: int
    group_size: int = Field(description="Rollouts per prompt (GRPO group).")
    max_steps: int | None = Field(None, description="Empty: the trainer derives it from epochs.")
    epochs: int | None = None
    gradient_accumulation: int
    scheduler: str
    optimizer: str
    warmup_steps: int
    kl_coef: str
    clip_range: str
    reward_scale: str
    reward_clip: str
    early_stopping: dict[str, Any] | None = None
    max_new_tokens: int
    temperature: str


class ResolvedGpu(StatusModel):
    """The GPUs the run requests per node."""

    type: str
    count: int


class ResolvedResources(StatusModel):
    """The compute the run requests."""

    gpu: ResolvedGpu
    cpu: str
    memory: str
    nodes: int


class ResolvedRollouts(StatusModel):
    """The rollout settings."""

    workers: int
    concurrency: int = Field(description="Rollouts at once per worker.")
    timeout_seconds: int
    retries: int = 1


class ResolvedCheckpoint(StatusModel):
    """The checkpoint settings."""

    every_steps: int
    keep: int
    dir: str


class ResolvedEvaluation(StatusModel):
    """When validation runs."""

    every_steps: int


class Resolved(StatusModel):
    """What `auto` turned into: the concrete settings the run uses."""

    template: str | None = Field(None, description="Template, or empty for a custom agent.")
    task_type: str = Field(description="Kind of task the agent solves.")
    dataset: ResolvedDataset
    model: ResolvedModel
    algorithm: Algorithm
    backend: Backend = Field(description="cpu (torch loop) or verl (GPU).")
    hyperparameters: ResolvedHyperparameters
    resources: ResolvedResources
    rollouts: ResolvedRollouts
    checkpoint: ResolvedCheckpoint
    evaluation: ResolvedEvaluation | None = None


class Progress(StatusModel):
    """How far training is."""

    step: int = Field(0, description="Optimizer steps done.")
    total_steps: int | None = Field(None, description="Optimizer steps planned.")
    percent: int | None = Field(None, ge=0, le=100, description="step / totalSteps in percent.")
    epoch: int | None = Field(None, description="Current pass over the dataset.")
    eta_seconds: int | None = Field(None, description="Estimated seconds left.")
    updated_at: datetime | None = Field(None, description="When the trainer last reported.")


class RewardStats(StatusModel):
    """Reward over the last step's rollouts."""

    mean: Figure | None = None
    min: Figure | None = None
    max: Figure | None = None
    std: Figure | None = None


class TrainingMetrics(StatusModel):
    """Latest training metrics reported by the trainer."""

    reward: RewardStats | None = None
    validation_reward: Figure | None = None
    success_rate: Figure | None = None
    policy_loss: Figure | None = None
    value_loss: Figure | None = None
    loss: Figure | None = None
    steps_per_second: Figure | None = None
    samples_per_second: Figure | None = None
    gpu_utilization: Figure | None = None
    gpu_memory_bytes: int | None = None
    rollouts_failed: int | None = Field(
        None, description="Training rollouts that failed after their retries, in this attempt."
    )
    groups_dropped: int | None = Field(
        None, description="Groups left out of their step because a rollout of theirs failed."
    )


class BestCheckpoint(StatusModel):
    """The best checkpoint so far."""

    step: int
    uri: str = Field(description="pvc://CLAIM/PATH/step-N of a loadable model directory.")
    metric: str = Field(description="Metric used to rank checkpoints.")
    value: Figure | None = None


class EvaluationPoint(StatusModel):
    """One evaluation on the validation split: the step it followed and what it measured."""

    step: int = Field(ge=0, description="Optimizer steps done when it ran (0: before training).")
    validation_reward: Figure = Field(description="Mean greedy reward on the validation split.")
    success_rate: Figure | None = Field(None, description="Share of validation items solved.")


MAX_EVALUATIONS = 200
"""Evaluation points a run keeps (the first, then the newest)."""


class EvaluationSeries(StatusModel):
    """The evaluations of a run so far, oldest first (a Sweep prunes on them)."""

    points: list[EvaluationPoint] = Field(default_factory=list, max_length=MAX_EVALUATIONS)


class Diagnosis(StatusModel):
    """Why the last attempt failed and what to do about it."""

    reason: str = Field(description="OutOfMemory, Diverged, DatasetInvalid, ImagePullFailed, ...")
    message: str = Field("", description="What went wrong.")
    suggestions: list[str] = Field(default_factory=list, description="Fixes to try.")
    auto_fix_applied: bool = Field(
        False, description="Whether the operator applied a fix for the next attempt."
    )


class MlflowRun(StatusModel):
    """The MLflow run that records this training."""

    run_id: str | None = None
    url: str | None = None


class TrainingRunStatus(StatusModel):
    """Observed state of a TrainingRun, written by the operator."""

    observed_generation: int | None = None
    phase: Phase | None = Field(None, description="Short summary; conditions are the truth.")
    conditions: Conditions = Field(default_factory=list)
    resolved: Resolved | None = Field(None, description="The concrete settings `auto` became.")
    progress: Progress | None = None
    metrics: TrainingMetrics | None = None
    best_checkpoint: BestCheckpoint | None = None
    evaluations: EvaluationSeries | None = Field(
        None, description="Every evaluation so far: step, validation reward, success rate.")
    diagnosis: Diagnosis | None = None
    attempts: int = Field(0, description="Attempts started.")
    start_time: datetime | None = None
    completion_time: datetime | None = None
    cost: Cost | None = None
    mlflow: MlflowRun | None = None


class TrainingRun(KubeObject):
    """A TrainingRun object as stored in the cluster."""

    api_version: Literal["arclight.dev/v1alpha1"] = API_VERSION
    kind: Literal["TrainingRun"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: TrainingRunSpec
    status: TrainingRunStatus | None = None


PRINTER_COLUMNS = [
    {"name": "Template", "type": "string", "jsonPath": ".spec.template"},
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Progress",
        "type": "integer",
        "jsonPath": ".status.progress.percent",
        "description": "Percent of steps done",
    },
    {"name": "Reward", "type": "number", "jsonPath": ".status.metrics.reward.mean"},
    {"name": "Credits", "type": "integer", "jsonPath": ".status.cost.credits"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
