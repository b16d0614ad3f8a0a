"""Shared building blocks of the Arclight API: base models, value types, conditions, references."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Final, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "arclight.dev"
VERSION = "v1alpha1"
API_VERSION: Final = "arclight.dev/v1alpha1"  # f"{GROUP}/{VERSION}", literal for typing
CATEGORIES = ["arclight"]

DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DECIMAL_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
FRACTION_PATTERN = r"^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$"
AUTO_DECIMAL_PATTERN = r"^(auto|([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?)$"
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
ENTRYPOINT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"

SIGNIFICANT_DIGITS = 4


def significant(value: float | None) -> float | None:
    """`value` rounded to SIGNIFICANT_DIGITS significant digits (0.15000000000000002 -> 0.15)."""
    if value is None or value == 0 or not math.isfinite(value):
        return value
    return round(value, SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(value))))


Figure = Annotated[float, AfterValidator(significant)]
"""A measured figure in status: stored and shown with the digits that mean something."""

# JSON Schema marker that hack/gen-crds.py turns into `x-kubernetes-int-or-string: true`.
INT_OR_STRING: dict[str, Any] = {"x-kubernetes-int-or-string": True}


def require_one_of(owner: str, values: dict[str, Any]) -> None:
    """Raise ValueError naming the fields unless exactly one of `values` is set (not None)."""
    chosen = [name for name, value in values.items() if value is not None]
    if len(chosen) != 1:
        got = f" (got {', '.join(chosen)})" if chosen else ""
        raise ValueError(f"{owner}: set exactly one of {' or '.join(values)}{got}")


def one_of_required(*fields: str) -> dict[str, Any]:
    """JSON Schema `oneOf` that requires exactly one of the (camelCase) fields."""
    return {"oneOf": [{"required": [field]} for field in fields]}


Name = Annotated[str, Field(pattern=DNS_SUBDOMAIN_PATTERN, max_length=253)]
"""A Kubernetes object name."""


def _finite(value: str) -> str:
    """A decimal string the trainer can use: finite as a float (``1e1000`` is not)."""
    if value != "auto" and not math.isfinite(float(value)):
        raise ValueError(f"{value!r} is too large; use a decimal below 1e308")
    return value


DecimalStr = Annotated[str, Field(pattern=DECIMAL_PATTERN), AfterValidator(_finite)]
"""A non-negative decimal number written as a string (no floats in spec)."""
FractionStr = Annotated[str, Field(pattern=FRACTION_PATTERN)]
"""A decimal between 0 and 1 written as a string."""
AutoDecimal = Annotated[str, Field(pattern=AUTO_DECIMAL_PATTERN), AfterValidator(_finite)]
"""`auto` or a non-negative decimal string."""
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
AutoInt = Annotated[
    Literal["auto"] | Annotated[int, Field(ge=1)], Field(json_schema_extra=INT_OR_STRING)
]
"""`auto` or a positive integer (int-or-string in the CRD)."""
AutoCount = Annotated[
    Literal["auto"] | Annotated[int, Field(ge=0)], Field(json_schema_extra=INT_OR_STRING)
]
"""`auto` or a non-negative integer (int-or-string in the CRD)."""
Quantity = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=QUANTITY_PATTERN)],
    Field(json_schema_extra=INT_OR_STRING),
]
"""A Kubernetes resource quantity such as `500m`, `2` or `4Gi`."""
Rate = Annotated[
    Annotated[int, Field(ge=0)] | Annotated[str, Field(pattern=DECIMAL_PATTERN)],
    Field(json_schema_extra=INT_OR_STRING),
]
"""A non-negative price: an integer, or a decimal string such as "0.5"."""
Entrypoint = Annotated[str, Field(pattern=ENTRYPOINT_PATTERN)]
"""A Python callable as `module:function`."""
GpuType = Literal["none", "t4", "l4", "a10", "v100", "a100", "h100", "h200"]


class SpecModel(BaseModel):
    """Base of every user-written (spec) model: camelCase, immutable, unknown fields rejected."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


class StatusModel(BaseModel):
    """Base of every operator-written (status) model: camelCase, mutable, unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Cost(StatusModel):
    """What the object's pods have cost so far: the ledger's figures plus the running pods'
    part not written yet (credits rounded once from the exact sum)."""

    gpu_seconds: int = 0
    credits: int = 0


class ServingCost(Cost):
    """A ModelDeployment's cost, and what it served for it."""

    requests: int | None = Field(
        None, description="Requests its replicas answered (counted each metering round).")
    credits_per_1000_requests: str | None = Field(
        None, alias="creditsPer1000Requests",
        description="Credits per 1,000 requests, to a hundredth of a credit.")


class ConditionStatus(StrEnum):
    """The three values of a condition's status."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One observation of the object's state, following the Kubernetes API conventions."""

    type: str = Field(description="Condition type in CamelCase, e.g. `Running`.")
    status: Literal["True", "False", "Unknown"] = Field(
        description="Whether the condition holds: True, False or Unknown."
    )
    reason: str = Field(
        "Unknown",
        pattern=REASON_PATTERN,
        description="Machine-readable reason for the last transition, in CamelCase.",
    )
    message: str = Field("", description="What happened, as a sentence a person can act on.")
    observed_generation: int | None = Field(
        None, ge=0, description="The spec generation this condition was computed from."
    )
    last_transition_time: datetime | None = Field(
        None, description="When the status last changed (not when it was last checked)."
    )


Conditions = Annotated[
    list[Condition],
    Field(
        description="Current observations of the object's state, one per type.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    ),
]
"""A status' condition list: a map keyed by condition type."""


class SecretRef(SpecModel):
    """A Secret in the same namespace whose keys are all used."""

    name: Name = Field(description="Name of the Secret.")


class SecretKeyRef(SpecModel):
    """One key of a Secret in the same namespace."""

    name: Name = Field(description="Name of the Secret.")
    key: str = Field(
        pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="Key inside the Secret."
    )


class EnvVarSource(SpecModel):
    """Where an environment variable's value comes from."""

    secret_key_ref: SecretKeyRef = Field(description="Take the value from a Secret key.")


class EnvVar(SpecModel):
    """An environment variable for a container: a literal value or a Secret key."""

    name: str = Field(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$", description="Variable name.")
    value: str | None = Field(None, description="Literal value.")
    value_from: EnvVarSource | None = Field(None, description="Take the value from a Secret.")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if self.value is not None and self.value_from is not None:
            raise ValueError(f"env {self.name}: set value or valueFrom, not both")
        return self


class Toleration(SpecModel):
    """A pod toleration, as in the Kubernetes core API."""

    key: str | None = Field(None, description="Taint key; empty with Exists matches all taints.")
    operator: Literal["Exists", "Equal"] = Field("Equal", description="Exists or Equal.")
    value: str | None = Field(None, description="Taint value to match with Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to match; empty matches all effects."
    )
    toleration_seconds: int | None = Field(
        None, ge=0, description="How long a NoExecute taint is tolerated."
    )


class GpuRequest(SpecModel):
    """Accelerators requested per node."""

    type: GpuType = Field("none", description="GPU type; `none` trains on CPU.")
    count: int | None = Field(
        None, ge=0, le=16, description="GPUs per node; defaults to 1 when a type is set."
    )

    @model_validator(mode="after")
    def _count_matches_type(self) -> Self:
        if self.type == "none" and self.count:
            raise ValueError("gpu.count must be 0 or unset when gpu.type is none")
        return self

    @property
    def effective_count(self) -> int:
        """GPUs per node after defaulting: 0 for `none`, else the count or 1."""
        if self.type == "none":
            return 0
        return 1 if self.count is None else self.count


class WebhookTarget(SpecModel):
    """Where a notification goes: a URL, or a Secret key holding the URL."""

    model_config = ConfigDict(json_schema_extra=one_of_required("url", "secretRef"))

    url: str | None = Field(
        None, pattern=r"^https?://.+", description="Webhook URL that receives a JSON POST."
    )
    secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key that holds the webhook URL (for URLs with tokens)."
    )

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        require_one_of("notify", {"url": self.url, "secretRef": self.secret_ref})
        return self


class KubeObject(BaseModel):
    """Base of a whole object (apiVersion, kind, metadata, spec, status) as read from the cluster."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ObjectMeta(BaseModel):
    """The part of Kubernetes object metadata the models read; everything else is kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
