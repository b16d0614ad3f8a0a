"""CreditBudget: a team's GPU-credit allowance per period (cluster-scoped, short name `cb`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, Self, get_args

from pydantic import Field, model_validator

from arclight.api.common import (
    API_VERSION,
    Conditions,
    KubeObject,
    ObjectMeta,
    Rate,
    SecretKeyRef,
    SpecModel,
    StatusModel,
    WebhookTarget,
)

KIND: Final = "CreditBudget"
PLURAL = "creditbudgets"
SINGULAR = "creditbudget"
SHORT_NAMES = ["cb"]
SCOPE = "Cluster"

DEFAULT_ALERTS = [75, 90, 100]


class ConditionType(StrEnum):
    """Condition types of a CreditBudget."""

    ACTIVE = "Active"
    WARNING = "Warning"
    EXHAUSTED = "Exhausted"
    LEDGER_UNAVAILABLE = "LedgerUnavailable"
    OVERLAPPING = "Overlapping"
    NOTIFY_FAILING = "NotifyFailing"


class Reason(StrEnum):
    """Condition reasons of a CreditBudget."""

    INVALID_SPEC = "InvalidSpec"
    WITHIN_BUDGET = "WithinBudget"
    THRESHOLD_CROSSED = "ThresholdCrossed"
    CREDITS_EXHAUSTED = "CreditsExhausted"
    LEDGER_UNAVAILABLE = "LedgerUnavailable"
    LEDGER_AVAILABLE = "LedgerAvailable"
    METERING_DISABLED = "MeteringDisabled"
    MEASURING = "Measuring"
    OVERLAPPING_BUDGETS = "OverlappingBudgets"
    NO_OVERLAP = "NoOverlap"
    WEBHOOK_GIVEN_UP = "WebhookGivenUp"
    WEBHOOK_RETRYING = "WebhookRetrying"
    WEBHOOKS_DELIVERED = "WebhooksDelivered"


class LabelSelectorRequirement(SpecModel):
    """A label expression, as in Kubernetes label selectors."""

    key: str = Field(min_length=1, description="Label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(description="Operator.")
    values: list[str] = Field(default_factory=list, description="Values for In and NotIn.")

    @model_validator(mode="after")
    def _values_match_operator(self) -> Self:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"matchExpressions[{self.key}].values: required with {self.operator}")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(
                f"matchExpressions[{self.key}].values: must be empty with {self.operator}"
            )
        return self


class LabelSelector(SpecModel):
    """Selects namespaces by their labels; an empty selector selects every namespace."""

    match_labels: dict[str, str] = Field(default_factory=dict, description="Labels to match.")
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, description="Label expressions that must all hold."
    )


class Period(SpecModel):
    """The budget period; credits reset at its start."""

    type: Literal["monthly", "weekly", "daily", "none"] = Field(
        "monthly", description="Period length; `none` never resets."
    )
    reset_day: int = Field(
        1, ge=1, le=28, description="Day of the month (monthly) or ISO weekday 1-7 (weekly)."
    )
    time_zone: str = Field("UTC", min_length=1, description="IANA time zone of the reset.")

    @model_validator(mode="after")
    def _weekday(self) -> Self:
        if self.type == "weekly" and self.reset_day > 7:
            raise ValueError("period.resetDay: must be 1-7 (Monday-Sunday) for weekly")
        return self


class GpuHourRates(SpecModel):
    """Credits per GPU-hour by GPU type."""

    t4: Rate = Field(7, description="Credits per T4-hour.")
    l4: Rate = Field(9, description="Credits per L4-hour.")
    a10: Rate = Field(11, description="Credits per A10-hour.")
    v100: Rate = Field(15, description="Credits per V100-hour.")
    a100: Rate = Field(35, description="Credits per A100-hour.")
    h100: Rate = Field(75, description="Credits per H100-hour.")
    h200: Rate = Field(90, description="Credits per H200-hour.")


class Rates(SpecModel):
    """What resources cost, in credits (1 credit = 0.01 USD)."""

    gpu_hour: GpuHourRates = Field(
        default_factory=GpuHourRates, description="Credits per GPU-hour by GPU type."
    )
    cpu_hour: Rate = Field(4, description="Credits per requested CPU core-hour.")
    memory_gib_hour: Rate = Field(
        "0.5", alias="memoryGiBHour", description="Credits per requested GiB-hour of memory."
    )
    storage_gib_month: Rate = Field(
        10, alias="storageGiBMonth",
        description="Credits per GiB-month (730 h) of artifact storage: the requested size of "
        "the claims holding artifacts (the operator's artifacts claim, TrainingRun pvc:// "
        "checkpoints).",
    )


class BudgetNotification(WebhookTarget):
    """A webhook called when the budget crosses an alert threshold or runs out.

    A CreditBudget is cluster-scoped: ``secretRef`` and ``signingSecretRef`` name Secrets in
    the operator's namespace. Each POST carries ``X-Arclight-Signature: t=<unix>,v1=<hex>``,
    the HMAC-SHA256 of ``<unix>.<body>`` with the signing key, and is retried with backoff
    until the receiver answers 2xx.
    """

    events: list[Literal["BudgetWarning", "BudgetExhausted"]] = Field(
        default_factory=lambda: list(get_args(Literal["BudgetWarning", "BudgetExhausted"])),
        description="Events that trigger the webhook.",
    )
    signing_secret_ref: SecretKeyRef | None = Field(
        None, description=(
            "Secret key (operator's namespace) whose value signs each POST "
            "(X-Arclight-Signature); unset sends unsigned POSTs."),
    )


class Limits(SpecModel):
    """How much work the budget's namespaces may run at once (a free or team plan)."""

    max_runs: int | None = Field(
        None, ge=0, alias="maxRuns",
        description="TrainingRuns running at once; more wait in creation order.")
    max_gpus: int | None = Field(
        None, ge=0, alias="maxGPUs",
        description="GPUs the budget's running TrainingRuns may request at once.")


class Adjustment(SpecModel):
    """Credits given back or added by the platform team, recorded once in the ledger in the
    period current when the operator first sees it (removing it later changes nothing)."""

    name: str = Field(
        min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Unique key of the adjustment (a ticket number, say).")
    kind: Literal["refund", "bonus", "adjustment"] = Field(
        "adjustment", description="`refund` and `bonus` add credits; `adjustment` may remove.")
    credits: int = Field(description="Credits added (negative removes; only `adjustment`).")
    reason: str = Field("", max_length=256, description="Why, for the ledger and the Event.")

    @model_validator(mode="after")
    def _sign(self) -> Self:
        if self.kind != "adjustment" and self.credits <= 0:
            raise ValueError(f"adjustments[{self.name}].credits: a {self.kind} adds credits "
                             "(> 0); use kind adjustment to remove credits")
        return self


class CreditBudgetSpec(SpecModel):
    """Desired state of a CreditBudget."""

    namespace_selector: LabelSelector = Field(
        default_factory=LabelSelector, description="Namespaces charged to this budget."
    )
    period: Period = Field(default_factory=Period, description="When credits reset.")
    credits: int = Field(ge=0, description="Credits per period (1 credit = 0.01 USD).")
    rollover: bool = Field(False, description="Carry unused credits into the next period.")
    rates: Rates = Field(default_factory=Rates, description="Prices in credits.")
    alerts: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=lambda: list(DEFAULT_ALERTS),
        description="Percent-used thresholds that raise a warning.",
    )
    enforcement: Literal["warn", "hold", "stop"] = Field(
        "hold",
        description=(
            "At 100%: `warn` only warns, `hold` keeps new runs waiting with BudgetExceeded,"
            " `stop` also suspends running work."
        ),
    )
    notify: list[BudgetNotification] = Field(default_factory=list, description="Webhooks.")
    limits: Limits = Field(default_factory=Limits, description="Concurrency limits.")
    adjustments: list[Adjustment] = Field(
        default_factory=list, description="Refunds, bonuses and corrections (each once).")

    @model_validator(mode="after")
    def _unique_adjustments(self) -> Self:
        names = [a.name for a in self.adjustments]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"adjustments: duplicate name {', '.join(duplicates)}")
        return self


class NamespaceUsage(StatusModel):
    """Credits one namespace used this period."""

    namespace: str
    used: int = 0


class CreditBudgetStatus(StatusModel):
    """Observed state of a CreditBudget."""

    observed_generation: int | None = None
    conditions: Conditions = Field(default_factory=list)
    period_start: datetime | None = None
    period_end: datetime | None = None
    granted: int | None = Field(
        None, description="Credits of this period: spec.credits, rollover and adjustments.")
    used: int | None = None
    remaining: int | None = None
    percent_used: int | None = None
    projected_at_period_end: int | None = None
    by_namespace: list[NamespaceUsage] = Field(default_factory=list)
    last_metered_at: datetime | None = None
    alerts_raised: list[int] = Field(
        default_factory=list, description="Alert thresholds already raised this period.")
    running: int | None = Field(None, description="TrainingRuns admitted and running now.")
    gpus_in_use: int | None = Field(
        None, alias="gpusInUse", description="GPUs those TrainingRuns request.")


class CreditBudget(KubeObject):
    """A CreditBudget object as stored in the cluster."""

    api_version: Literal["arclight.dev/v1alpha1"] = API_VERSION
    kind: Literal["CreditBudget"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: CreditBudgetSpec
    status: CreditBudgetStatus | None = None


PRINTER_COLUMNS = [
    {"name": "Credits", "type": "integer", "jsonPath": ".spec.credits"},
    {"name": "Used", "type": "integer", "jsonPath": ".status.used"},
    {"name": "Remaining", "type": "integer", "jsonPath": ".status.remaining"},
    {"name": "Percent", "type": "integer", "jsonPath": ".status.percentUsed"},
    {"name": "Enforcement", "type": "string", "jsonPath": ".spec.enforcement"},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]
