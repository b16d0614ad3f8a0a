"""The TrainingRun kind as the framework sees it: its children, references and plan."""
from __future__ import annotations

from arclight.api import trainingrun as api
from arclight.api.common import GROUP, VERSION
from arclight.core.plan import ChildKind, Kind
from arclight.training.plan import on_error, plan, references
from arclight.training.validation import validate_trainingrun

CHILDREN = (
    ChildKind("", "v1", "ConfigMap", "configmaps"),
    ChildKind("", "v1", "ServiceAccount", "serviceaccounts"),
    ChildKind("rbac.authorization.k8s.io", "v1", "Role", "roles"),
    ChildKind("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    ChildKind("", "v1", "Service", "services"),
    ChildKind("batch", "v1", "Job", "jobs"),
    ChildKind("", "v1", "Pod", "pods", prune=False),
)
WATCHES = (ChildKind(GROUP, VERSION, "CreditBudget", "creditbudgets", prune=False),
           ChildKind(GROUP, VERSION, "ModelDeployment", "modeldeployments", prune=False))

TRAINING_RUN = Kind(group=GROUP, version=VERSION, kind=api.KIND, plural=api.PLURAL,
                    namespaced=True, children=CHILDREN, parse=validate_trainingrun,
                    plan=plan, on_error=on_error, references=references, watches=WATCHES)
