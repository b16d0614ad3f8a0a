"""The ModelDeployment kind as the framework sees it: its children, references and plan.

The optional APIs are watched at the version the cluster prefers (an empty version), the one
discovery picks for the manifests (``Facts.capabilities``): the HPA as ``autoscaling/v2`` or
``v2beta2``, KEDA's ScaledObject, the Gateway API's HTTPRoute. A kind the cluster does not
serve is simply not watched (kopf starts watching it once it is installed).
"""
from __future__ import annotations

from arclight.api import modeldeployment as api
from arclight.api.common import GROUP, VERSION
from arclight.core.facts import GATEWAY_GROUP, KEDA_GROUP
from arclight.core.plan import ChildKind, Kind
from arclight.serving.builders import validate
from arclight.serving.plan import on_error, plan, references

CHILDREN = (
    ChildKind("apps", "v1", "Deployment", "deployments"),
    ChildKind("", "v1", "Service", "services"),
    ChildKind("autoscaling", "", "HorizontalPodAutoscaler", "horizontalpodautoscalers"),
    ChildKind(KEDA_GROUP, "", "ScaledObject", "scaledobjects"),
    ChildKind(GATEWAY_GROUP, "", "HTTPRoute", "httproutes"),
    ChildKind("", "v1", "Pod", "pods", prune=False),  # observed for metering, never pruned
)
#: A run's new best checkpoint queues the ModelDeployments that read it.
WATCHES = (ChildKind(GROUP, VERSION, "TrainingRun", "trainingruns", prune=False),)

MODEL_DEPLOYMENT = Kind(group=GROUP, version=VERSION, kind=api.KIND, plural=api.PLURAL,
                        namespaced=True, children=CHILDREN, parse=validate, plan=plan,
                        on_error=on_error, references=references, watches=WATCHES)
