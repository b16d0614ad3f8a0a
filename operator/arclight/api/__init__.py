"""The Arclight API (arclight.dev/v1alpha1): pydantic models that are the source of the CRDs."""

from arclight.api import creditbudget, modeldeployment, sweep, trainer, trainingrun
from arclight.api.common import (
    API_VERSION,
    CATEGORIES,
    GROUP,
    VERSION,
    Condition,
    ConditionStatus,
    EnvVar,
    GpuRequest,
    ObjectMeta,
    SecretKeyRef,
    SecretRef,
    Toleration,
)
from arclight.api.creditbudget import CreditBudget, CreditBudgetSpec, CreditBudgetStatus
from arclight.api.modeldeployment import (
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
)
from arclight.api.sweep import Sweep, SweepSpec, SweepStatus
from arclight.api.trainer import (
    ExitCode,
    FailureReason,
    ReportKey,
    TerminationReport,
    TrainerConfig,
)
from arclight.api.trainingrun import Resolved, TrainingRun, TrainingRunSpec, TrainingRunStatus

KIND_MODULES = (trainingrun, sweep, modeldeployment, creditbudget)
"""One module per kind, each with KIND, PLURAL, SINGULAR, SHORT_NAMES, SCOPE, PRINTER_COLUMNS."""

__all__ = [
    "API_VERSION",
    "CATEGORIES",
    "GROUP",
    "KIND_MODULES",
    "VERSION",
    "Condition",
    "ConditionStatus",
    "CreditBudget",
    "CreditBudgetSpec",
    "CreditBudgetStatus",
    "EnvVar",
    "ExitCode",
    "FailureReason",
    "GpuRequest",
    "ModelDeployment",
    "ModelDeploymentSpec",
    "ModelDeploymentStatus",
    "ObjectMeta",
    "ReportKey",
    "Resolved",
    "SecretKeyRef",
    "SecretRef",
    "Sweep",
    "SweepSpec",
    "SweepStatus",
    "TerminationReport",
    "Toleration",
    "TrainerConfig",
    "TrainingRun",
    "TrainingRunSpec",
    "TrainingRunStatus",
    "creditbudget",
    "modeldeployment",
    "sweep",
    "trainer",
    "trainingrun",
]
