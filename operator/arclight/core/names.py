"""Names, labels and owner references shared by every builder."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GROUP = "arclight.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
OWNER_KIND_LABEL = f"{GROUP}/owner-kind"
OWNER_NAME_LABEL = f"{GROUP}/owner-name"
OWNER_UID_LABEL = f"{GROUP}/owner-uid"
GPU_TYPE_LABEL = f"{GROUP}/gpu-type"
#: Held on every metered pod until its usage is in the ledger (external state).
METERING_FINALIZER = f"{GROUP}/metering"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
#: Longest TrainingRun name whose children (``<run>-trainer-<attempt>`` and pod names) stay
#: valid.
MAX_NAME_LENGTH = 40


def owner_labels(kind: str, name: str) -> dict[str, str]:
    """The labels that tie a child to its owner (used as selectors too)."""
    return {OWNER_KIND_LABEL: kind, OWNER_NAME_LABEL: name}


@dataclass(frozen=True)
class Owner:
    """The object children belong to: what their names, labels and owner references need."""

    api_version: str
    kind: str
    name: str
    namespace: str | None
    uid: str

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Owner:
        """The owner described by an object dict (apiVersion, kind, metadata)."""
        meta = obj["metadata"]
        return cls(obj.get("apiVersion", API_VERSION), obj["kind"], meta["name"],
                   meta.get("namespace"), meta.get("uid") or "")


def owner_reference(owner: Owner | Mapping[str, Any]) -> dict[str, Any]:
    """A controller owner reference to ``owner``."""
    owner = owner if isinstance(owner, Owner) else Owner.of(owner)
    return {"apiVersion": owner.api_version, "kind": owner.kind, "name": owner.name,
            "uid": owner.uid, "controller": True, "blockOwnerDeletion": True}


def child_metadata(owner: Owner | Mapping[str, Any], name: str, component: str,
                   extra_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Metadata for a child of ``owner``: deterministic name, labels, owner reference."""
    owner = owner if isinstance(owner, Owner) else Owner.of(owner)
    labels = {**owner_labels(owner.kind, owner.name), COMPONENT_LABEL: component,
              MANAGED_BY_LABEL: "arclight", **(extra_labels or {})}
    return {"name": name, "namespace": owner.namespace, "labels": labels,
            "ownerReferences": [owner_reference(owner)]}


def metered_pod_metadata(labels: Mapping[str, str], owner_uid: str, gpu_type: str,
                         metered: bool) -> dict[str, Any]:
    """Pod template metadata: ``labels`` plus what metering reads (the owner's uid, the GPU
    type), and the metering finalizer when the operator meters (a pod deleted while the
    ledger is down stays until its usage is written)."""
    meta: dict[str, Any] = {"labels": {**labels, GPU_TYPE_LABEL: gpu_type,
                                       **({OWNER_UID_LABEL: owner_uid} if owner_uid else {})}}
    if metered:
        meta["finalizers"] = [METERING_FINALIZER]
    return meta
