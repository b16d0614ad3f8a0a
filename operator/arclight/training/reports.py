"""The report channel: ConfigMap ``<run>-report`` (written by the trainer) -> run status.

Each key holds a JSON document of the contract (``arclight.api.trainer.REPORT_DOCUMENTS``).
Documents that do not parse or do not fit their model are skipped, so a misbehaving
trainer cannot break the status.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from arclight.api.trainer import REPORT_DOCUMENTS, ProgressReport, ReportKey
from arclight.api.trainingrun import Progress

log = logging.getLogger(__name__)
#: Report keys rendered into status, each under the status field of the same name.
STATUS_KEYS = (ReportKey.PROGRESS, ReportKey.METRICS, ReportKey.BEST_CHECKPOINT,
               ReportKey.EVALUATIONS)


def _percent(progress: ProgressReport) -> int | None:
    if not progress.total_steps:
        return None
    return max(0, min(100, int(100 * progress.step / progress.total_steps)))


def _status_value(document: BaseModel) -> BaseModel:
    """The status model of a document: ``progress`` gains ``percent``; the others are their
    own status models."""
    if isinstance(document, ProgressReport):
        return Progress(**document.model_dump(), percent=_percent(document))
    return document


def status_from_report(data: Mapping[str, str]) -> dict[str, Any]:
    """Status fields (``progress``, ``metrics``, ``bestCheckpoint``, ``evaluations``) from
    report data."""
    status: dict[str, Any] = {}
    for key in STATUS_KEYS:
        if key not in data:
            continue
        try:
            document = REPORT_DOCUMENTS[key].model_validate_json(data[key])
            value = _status_value(document)
        except (ValidationError, ValueError, TypeError) as exc:
            log.warning("ignoring report key %s: %s", key, str(exc).splitlines()[0])
            continue
        status[str(key)] = value.model_dump(by_alias=True, mode="json", exclude_none=True)
    return status
