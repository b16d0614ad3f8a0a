"""The error classes every reconcile maps to a user-visible outcome.

- ``InvalidSpec``: the spec cannot be acted on (permanent): a condition naming the field and
  one Warning Event; no retry until the object changes.
- ``DependencyNotReady``: something the object references is not there yet (a CreditBudget,
  a TrainingRun without a checkpoint): a condition with its own reason, a requeue, no Warning;
  the object heals by itself when the dependency appears.
Anything else (API errors, bugs) is transient: retried with backoff by the frame.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError


class InvalidSpec(ValueError):
    """The spec cannot be acted on; the message names the field and what to change."""


class DependencyNotReady(Exception):
    """A referenced object is missing or not ready; the message says what is awaited."""

    def __init__(self, message: str, reason: str = "DependencyNotReady",
                 retry_after: float = 10.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


_PATH_HEAD = re.compile(r"^([A-Za-z_][\w.]*): (.+)$", re.DOTALL)
_UNION_TAGS = frozenset({"int", "str", "float", "bool", "list", "dict", "none", "decimal"})
#: A DNS-1035 label: what Service names (``<run>-gateway``, ``<md>``) must be.
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def check_name(name: str, max_length: int) -> None:
    """Refuse an object name its children (Services, Jobs, pods) could not be named after."""
    if len(name) > max_length or not DNS_LABEL.match(name):
        raise InvalidSpec(f"metadata.name: {name!r} cannot name this object's children; use "
                          f"lowercase letters, digits and '-', starting with a letter, at most "
                          f"{max_length} characters.")


def _path(prefix: str, loc: tuple[Any, ...]) -> str:
    """``spec.a.b[0]`` from a pydantic error location, without pydantic's union tags
    (``literal['auto']``, ``constrained-int``, ``function-after[...]``, ``int``, ...)."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif "[" in part or part in _UNION_TAGS or part.startswith(("constrained-", "function-")):
            continue
        else:
            path += f".{part}"
    return path


def invalid_spec(exc: ValidationError, prefix: str = "spec") -> InvalidSpec:
    """One InvalidSpec for pydantic's errors: the first failing field's path and what each
    alternative of a union wanted (``Input should be 'auto'; or ... >= 1``)."""
    errors = exc.errors()
    first = _path(prefix, tuple(errors[0]["loc"]))
    messages = [str(e["msg"]).removeprefix("Value error, ") for e in errors
                if _path(prefix, tuple(e["loc"])) == first]
    message = "; or ".join(dict.fromkeys(messages))
    head = _PATH_HEAD.match(message)
    if head and len(messages) == 1:  # a validator that names its own field
        named, rest = head.groups()
        last = first.rsplit(".", 1)[-1]
        if named in (prefix, last):
            message = rest
        elif named.startswith(last + "."):  # a model's validator naming its own field
            first, message = first + named[len(last):], rest
        elif first == prefix:
            first, message = f"{prefix}.{named}", rest
    return InvalidSpec(f"{first}: {message}")


M = TypeVar("M", bound=BaseModel)


def parse_spec(obj: Mapping[str, Any], model: type[M], max_name_length: int) -> M:
    """The validated spec of ``obj``: its name fits its children and its spec fits
    ``model``; otherwise InvalidSpec naming the first bad field."""
    check_name(obj["metadata"]["name"], max_name_length)
    try:
        return model.model_validate(obj.get("spec") or {})
    except ValidationError as exc:
        raise invalid_spec(exc) from None
