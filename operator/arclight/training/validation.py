"""Checks the CRD schema cannot express; failures become an ``InvalidSpec`` condition."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from arclight.api.trainingrun import TrainingRunSpec
from arclight.core.errors import check_name, invalid_spec
from arclight.training.builders import MAX_NAME_LENGTH


def validate_trainingrun(run: Mapping[str, Any]) -> TrainingRunSpec:
    """The validated spec of ``run``; raise InvalidSpec naming the first bad field."""
    check_name(run["metadata"]["name"], MAX_NAME_LENGTH)
    try:
        return TrainingRunSpec.model_validate(run.get("spec") or {})
    except ValidationError as exc:
        raise invalid_spec(exc) from None
