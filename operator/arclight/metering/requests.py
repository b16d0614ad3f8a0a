"""Requests served by a ModelDeployment's replicas, and its cost per 1,000 requests (pure).

Each serving container counts what it answered since it started; a pod's incarnation is the
server container's restart count, so a restarted container's new count adds to the old one.
The figure is the owner's credits (exact credit-seconds / 3600) per 1,000 requests, rounded
once, half up, to a hundredth of a credit.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from arclight.core.names import OWNER_KIND_LABEL, OWNER_NAME_LABEL, OWNER_UID_LABEL

SERVER_CONTAINER = "server"
HUNDREDTH = Decimal("0.01")


@dataclass(frozen=True)
class ServingTarget:
    """Where one running serving container answers, and whose it is."""

    pod_uid: str
    incarnation: int
    ip: str
    port: int
    owner_uid: str
    namespace: str
    owner_name: str


def serving_target(pod: Mapping[str, Any]) -> ServingTarget | None:
    """The server container of a running ModelDeployment pod (None for any other pod)."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    labels = meta.get("labels") or {}
    if labels.get(OWNER_KIND_LABEL) != "ModelDeployment" or status.get("phase") != "Running":
        return None
    if meta.get("deletionTimestamp") or not status.get("podIP"):
        return None
    container = next((c for c in spec.get("containers") or []
                      if c.get("name") == SERVER_CONTAINER), None)
    port = next((p.get("containerPort") for p in (container or {}).get("ports") or []
                 if p.get("name") == "http"), None)
    state = next((c for c in status.get("containerStatuses") or []
                  if c.get("name") == SERVER_CONTAINER), None)
    if port is None or state is None or "running" not in (state.get("state") or {}):
        return None
    return ServingTarget(pod_uid=str(meta.get("uid")), incarnation=int(state.get("restartCount")
                                                                        or 0),
                         ip=str(status["podIP"]), port=int(port),
                         owner_uid=str(labels.get(OWNER_UID_LABEL) or ""),
                         namespace=str(meta.get("namespace")),
                         owner_name=str(labels.get(OWNER_NAME_LABEL) or ""))


def per_thousand(credit_seconds: Decimal, requests: int) -> str | None:
    """Credits per 1,000 requests as a decimal string (None before the first request)."""
    if requests <= 0:
        return None
    value = credit_seconds * 1000 / (Decimal(3600) * requests)
    return str(value.quantize(HUNDREDTH, rounding=ROUND_HALF_UP))
