"""Checks the CRD schema cannot express; failures become an ``InvalidSpec`` condition."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arclight.api.trainingrun import TrainingRunSpec
from arclight.core.errors import parse_spec
from arclight.core.names import MAX_NAME_LENGTH


def validate_trainingrun(run: Mapping[str, Any]) -> TrainingRunSpec:
    """The validated spec of ``run``; raise InvalidSpec naming the first bad field."""
    return parse_spec(run, TrainingRunSpec, MAX_NAME_LENGTH)
