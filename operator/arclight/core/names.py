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
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"


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
