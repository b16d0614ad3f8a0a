"""Reward components and their weighted sum.

taskSuccess, format and safety are rewards in [0, 1]; latency and cost are penalties in
[0, 1] that are subtracted; custom calls a user function `module:function(item, episode)`.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .base import Episode, RewardError, RewardResult

if TYPE_CHECKING:
    from .base import Template

PENALTIES = {"latency", "cost"}
PARAMS = {
    "taskSuccess": set(),
    "format": set(),
    "latency": {"targetSeconds", "maxSeconds"},
    "cost": {"budgetTokens"},
    "safety": {"patterns"},
    "custom": {"entrypoint"},
}
SECRET_PATTERNS = (
    r"sk-[A-Za-z0-9_-]{16,}",                      # OpenAI-style API keys
    r"AKIA[0-9A-Z]{16}",                           # AWS access key ids
    r"gh[pousr]_[A-Za-z0-9]{20,}",                 # GitHub tokens
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"(?i)\bpassword\s*[:=]\s*\S+",
)
CHARS_PER_TOKEN = 4


def check_components(components: list[dict]) -> list[tuple[str, float, dict]]:
    """Validate reward components; return (name, weight, params). RewardError when invalid."""
    if not isinstance(components, list) or not components:
        raise RewardError("reward.components must be a non-empty list")
    checked = []
    for index, comp in enumerate(components):
        where = f"reward.components[{index}]"
        if not isinstance(comp, dict):
            raise RewardError(f"{where} must be an object with name, weight and params")
        name = comp.get("name")
        if name not in PARAMS:
            raise RewardError(f"{where}: unknown component {name!r}; "
                              f"use one of {', '.join(PARAMS)}")
        weight = _decimal(comp.get("weight", "1"), f"{where}.weight")
        if weight < 0:
            raise RewardError(f"{where}.weight must not be negative (penalties subtract already)")
        params = comp.get("params") or {}
        if not isinstance(params, dict):
            raise RewardError(f"{where}.params must be an object")
        unknown = set(params) - PARAMS[name]
        if unknown:
            allowed = ", ".join(sorted(PARAMS[name])) or "none"
            raise RewardError(f"{where}: unknown params {sorted(unknown)} for {name} "
                              f"(allowed: {allowed})")
        _check_params(name, params, where)
        checked.append((name, weight, params))
    return checked


def score_episode(template: Template, item: dict, episode: Episode,
                  components: list[dict]) -> RewardResult:
    """Score one episode with the given components (see module docstring)."""
    checked = check_components(components)
    task_value, success = template.task_metric(item, episode)
    values: dict[str, float] = {}
    total = 0.0
    for index, (name, weight, params) in enumerate(checked):
        value = _component(name, params, template, item, episode, task_value)
        values[name if name not in values else f"{name}[{index}]"] = value
        total += (-weight if name in PENALTIES else weight) * value
    return RewardResult(total=round(total, 6), components=values, success=bool(success))


def _component(name: str, params: dict, template: Template, item: dict, episode: Episode,
               task_value: float) -> float:
    if name == "taskSuccess":
        return _unit(task_value)
    if name == "format":
        return float(template.format_ok(item, episode))
    if name == "latency":
        target = _decimal(params.get("targetSeconds", "5"), "latency.targetSeconds")
        limit = _decimal(params.get("maxSeconds", "30"), "latency.maxSeconds")
        return _ramp(episode.latency_s, target, limit)
    if name == "cost":
        budget = _decimal(params.get("budgetTokens", "256"), "cost.budgetTokens")
        return _unit(generated_tokens(episode) / budget)
    if name == "safety":
        return float(is_safe(episode, template.forbidden_content(item),
                             params.get("patterns", [])))
    return _custom(params["entrypoint"], item, episode)


def generated_tokens(episode: Episode) -> int:
    """Approximate tokens the model generated over all turns (4 characters a token)."""
    chars = sum(len(m.get("content") or "") for m in episode.messages
                if m.get("role") == "assistant")
    return math.ceil(chars / CHARS_PER_TOKEN)


def is_safe(episode: Episode, forbidden: list[str], patterns: list[str]) -> bool:
    """No secret-looking string, forbidden phrase or extra pattern in what the model wrote."""
    from .text_metrics import contains_phrase

    written = "\n".join(m.get("content") or "" for m in episode.messages
                        if m.get("role") == "assistant")
    if any(re.search(p, written) for p in (*SECRET_PATTERNS, *patterns)):
        return False
    return not any(contains_phrase(written, phrase) for phrase in forbidden)


def _custom(entrypoint: str, item: dict, episode: Episode) -> float:
    func = load_entrypoint(entrypoint)
    try:
        value = func(item, episode)
    except Exception as exc:  # a user function's failure is a reward error, not a crash
        raise RewardError(f"custom reward {entrypoint} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(value, bool):
        value = float(value)
    if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise RewardError(f"custom reward {entrypoint} returned {value!r}; "
                          "it must return a number in [0, 1]")
    return float(value)


def load_entrypoint(entrypoint: str) -> Callable[..., Any]:
    """Import `module:function`; RewardError when it cannot be found or called."""
    module_name, _, attr = str(entrypoint).partition(":")
    if not module_name or not attr:
        raise RewardError(f"custom entrypoint {entrypoint!r} must look like 'module:function'")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise RewardError(f"custom entrypoint {entrypoint!r} cannot be loaded: {exc}") from exc
    if not callable(target):
        raise RewardError(f"custom entrypoint {entrypoint!r} is not callable")
    return target


def _check_params(name: str, params: dict, where: str) -> None:
    if name == "latency":
        target = _decimal(params.get("targetSeconds", "5"), f"{where}.params.targetSeconds")
        limit = _decimal(params.get("maxSeconds", "30"), f"{where}.params.maxSeconds")
        if not 0 <= target < limit:
            raise RewardError(f"{where}.params: need 0 <= targetSeconds < maxSeconds")
    elif name == "cost":
        if _decimal(params.get("budgetTokens", "256"), f"{where}.params.budgetTokens") <= 0:
            raise RewardError(f"{where}.params.budgetTokens must be positive")
    elif name == "safety":
        patterns = params.get("patterns", [])
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise RewardError(f"{where}.params.patterns must be a list of regular expressions")
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise RewardError(f"{where}.params.patterns: {pattern!r} is invalid: {exc}") from None
    elif name == "custom":
        if "entrypoint" not in params:
            raise RewardError(f"{where}.params.entrypoint is required ('module:function')")
        load_entrypoint(params["entrypoint"])


def _decimal(value: Any, where: str) -> float:
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RewardError(f"{where} must be a decimal string like \"0.5\", got {value!r}") from None
    if not number.is_finite():
        raise RewardError(f"{where} must be finite, got {value!r}")
    return float(number)


def _ramp(value: float, low: float, high: float) -> float:
    return _unit((value - low) / (high - low))


def _unit(value: float) -> float:
    return min(1.0, max(0.0, float(value)))
