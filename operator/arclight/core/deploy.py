"""The one ModelDeployment builder for "serve this TrainingRun's best checkpoint": used by a
TrainingRun's ``spec.deploy`` and a Sweep's ``promote``."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arclight.api.common import API_VERSION
from arclight.core.plan import Child


def serve_run(name: str, namespace: str, run: str, existing: Mapping[str, Any] | None
              ) -> Child | None:
    """The ModelDeployment ``name`` pointed at TrainingRun ``run`` (created if missing; its
    other source fields cleared), or None when it already serves that run."""
    source = {"trainingRun": run}
    if existing is not None and (existing.get("spec") or {}).get("source") == source:
        return None
    manifest = {"apiVersion": API_VERSION, "kind": "ModelDeployment",
                "metadata": {"name": name, "namespace": namespace}, "spec": {"source": source}}
    return Child(manifest, create_only=True,
                 patch={"spec": {"source": {**source, "uri": None, "mlflowModel": None}}})
