"""Checks the CRD schema cannot express; failures become an ``InvalidSpec`` condition."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from arclight.api.trainingrun import TrainingRunSpec
from arclight.core.errors import InvalidSpec
from arclight.training.builders import MAX_NAME_LENGTH


def _field(loc: tuple[Any, ...]) -> str:
    path = "spec"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate_trainingrun(run: Mapping[str, Any]) -> TrainingRunSpec:
    """The validated spec of ``run``; raise InvalidSpec naming the first bad field."""
    name = run["metadata"]["name"]
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSpec(f"metadata.name: {len(name)} characters is too long; use at most "
                          f"{MAX_NAME_LENGTH} so that child Job and pod names stay valid.")
    try:
        spec = TrainingRunSpec.model_validate(run.get("spec") or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        raise InvalidSpec(f"{_field(err['loc'])}: {message}") from None
    return spec
