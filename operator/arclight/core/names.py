"""Names, labels and owner references shared by every builder."""
from __future__ import annotations

from collections.abc import Mapping
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


def owner_reference(owner: Mapping[str, Any]) -> dict[str, Any]:
    """A controller owner reference to ``owner`` (a custom object dict)."""
    meta = owner["metadata"]
    return {"apiVersion": owner.get("apiVersion", API_VERSION), "kind": owner["kind"],
            "name": meta["name"], "uid": meta["uid"], "controller": True,
            "blockOwnerDeletion": True}


def child_metadata(owner: Mapping[str, Any], name: str, component: str,
                   extra_labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Metadata for a child of ``owner``: deterministic name, labels, owner reference."""
    meta = owner["metadata"]
    labels = {**owner_labels(owner["kind"], meta["name"]), COMPONENT_LABEL: component,
              MANAGED_BY_LABEL: "arclight", **(extra_labels or {})}
    return {"name": name, "namespace": meta["namespace"], "labels": labels,
            "ownerReferences": [owner_reference(owner)]}
