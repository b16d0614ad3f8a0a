"""Trial parameters: their values as text, and a TrainingRun spec with them set at their paths.

A parameter's value travels as text (``"3.2e-05"``, ``"4"``, ``"concise"``): that is what the
trial's TrainingRun records, what status shows and what Optuna is told again when the study
is rebuilt, so a value is rendered once and read back exactly.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from arclight.api.sweep import Parameter, split_segment
from arclight.api.trainingrun import TrainingRunSpec

Value = float | int | str
#: Significant digits of a double parameter's value as written into the trial's spec.
DIGITS = 6


def render(parameter: Parameter, value: Value) -> str:
    """A value as the text the trial records (and its spec receives)."""
    if parameter.type == "double":
        return format(float(value), f".{DIGITS}g")
    if parameter.type == "int":
        return str(int(value))
    return str(value)


def typed(parameter: Parameter, text: str) -> Value:
    """The value behind the text ``render`` wrote, as Optuna holds it."""
    if parameter.type == "double":
        return float(text)
    if parameter.type == "int":
        return int(text)
    return text


def grid(parameters: Sequence[Parameter]) -> dict[str, list[Value]]:
    """Every parameter's grid points: its explicit values, or (int) each integer in range."""
    points: dict[str, list[Value]] = {}
    for parameter in parameters:
        if parameter.values:
            points[parameter.name] = [typed(parameter, v) for v in parameter.values]
        else:
            low, high = int(float(parameter.min or 0)), int(float(parameter.max or 0))
            points[parameter.name] = list(range(low, high + 1))
    return points


def grid_size(parameters: Sequence[Parameter]) -> int:
    """How many points the full grid has."""
    size = 1
    for values in grid(parameters).values():
        size *= len(values)
    return size


def _leaf_value(current: Any, text: str) -> Any:
    """The JSON value for a field that held ``current``: numbers stay numbers (an int field
    gets an int), anything else gets the text (decimal fields are strings in this API)."""
    if isinstance(current, bool):
        return text.lower() == "true"
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            return text
    return text


def set_path(document: dict[str, Any], path: str, text: str) -> None:
    """Set ``path`` (camelCase, ``[key]`` picks the list item named key, added if missing)
    in a spec dict to the value ``text`` stands for; missing objects are created."""
    segments = path.split(".")
    node: Any = document
    for index, segment in enumerate(segments):
        field, key = split_segment(segment)
        last = index == len(segments) - 1
        if key is not None:
            items = node.setdefault(field, [])
            item = next((i for i in items if isinstance(i, dict) and i.get("name") == key), None)
            if item is None:
                item = {"name": key}
                items.append(item)
            node = item
            if last:
                raise ValueError(f"{path}: a list item needs a field to set, e.g. {path}.value")
            continue
        if last:
            node[field] = _leaf_value(node.get(field), text)
        else:
            child = node.get(field)
            if not isinstance(child, dict):
                child = node[field] = {}
            node = child


def trial_spec(template: TrainingRunSpec, parameters: Sequence[Parameter],
               values: Mapping[str, str]) -> TrainingRunSpec:
    """The template with each parameter's value set at its path, validated; ValueError
    naming the parameter whose value the TrainingRun spec does not accept."""
    document = template.model_dump(by_alias=True, mode="json", exclude_none=True)
    for parameter in parameters:
        set_path(document, parameter.name, values[parameter.name])
    try:
        return TrainingRunSpec.model_validate(document)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        names = [p.name for p in parameters if where.startswith(p.name.split("[")[0])]
        culprit = names[0] if names else where
        raise ValueError(f"parameters[{culprit}]: value {values.get(culprit, '')!r} does not fit "
                         f"the TrainingRun spec at {where}: {error['msg']}") from None


def probe_values(parameter: Parameter) -> list[str]:
    """Values that stand for a parameter's whole range (each choice, or both bounds)."""
    if parameter.values:
        return list(parameter.values)
    return [render(parameter, typed(parameter, str(parameter.min))),
            render(parameter, typed(parameter, str(parameter.max)))]


def check_parameters(template: TrainingRunSpec, parameters: Sequence[Parameter]) -> None:
    """Raise ValueError naming the first parameter some of whose values the TrainingRun spec
    refuses (each choice and both bounds are tried, with the other parameters at their
    first value)."""
    first = {p.name: probe_values(p)[0] for p in parameters}
    for parameter in parameters:
        for value in probe_values(parameter):
            trial_spec(template, parameters, {**first, parameter.name: value})

