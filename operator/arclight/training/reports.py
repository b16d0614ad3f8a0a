"""The report channel: ConfigMap ``<run>-report`` (written by the trainer) -> run status.

Each key holds a JSON document (docs/architecture.md). Documents that do not parse or do
not fit the status models are skipped, so a misbehaving trainer cannot break the status.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from arclight.api.trainingrun import BestCheckpoint, Progress, TrainingMetrics

log = logging.getLogger(__name__)
SECTIONS: dict[str, tuple[str, type[BaseModel]]] = {
    "progress": ("progress", Progress),
    "metrics": ("metrics", TrainingMetrics),
    "bestCheckpoint": ("bestCheckpoint", BestCheckpoint),
}


def _percent(progress: Mapping[str, Any]) -> int | None:
    total = progress.get("totalSteps")
    if not total:
        return None
    return max(0, min(100, int(100 * int(progress.get("step") or 0) / int(total))))


def status_from_report(data: Mapping[str, str]) -> dict[str, Any]:
    """Status fields (``progress``, ``metrics``, ``bestCheckpoint``) from report data."""
    status: dict[str, Any] = {}
    for key, (field, model) in SECTIONS.items():
        if key not in data:
            continue
        try:
            document = json.loads(data[key])
            if key == "progress" and isinstance(document, dict):
                document = {**document, "percent": _percent(document)}
            value = model.model_validate(document)
        except (ValueError, ValidationError, TypeError) as exc:
            log.warning("ignoring report key %s: %s", key, str(exc).splitlines()[0])
            continue
        status[field] = value.model_dump(by_alias=True, mode="json", exclude_none=True)
    return status
