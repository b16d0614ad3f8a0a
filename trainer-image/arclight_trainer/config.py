"""Loading the TrainerConfig the operator writes to `<run>-config`.

The document itself (`TrainerConfig` and its parts) is the operator/trainer contract in
`arclight.api.trainer`; this module only reads and validates the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arclight.api.trainer import TrainerConfig
from pydantic import ValidationError


class ConfigError(ValueError):
    """The TrainerConfig file is missing or invalid."""


def parse_config(data: dict[str, Any]) -> TrainerConfig:
    """Validate a TrainerConfig document; raise ConfigError naming every bad field."""
    try:
        return TrainerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'TrainerConfig'}: {err['msg']}"
            for err in exc.errors())
        raise ConfigError(f"invalid TrainerConfig: {problems}") from exc


def load_config(path: str | Path) -> TrainerConfig:
    """Read and validate the TrainerConfig JSON file at `path`."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read TrainerConfig {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"TrainerConfig {path} must hold a JSON object")
    return parse_config(data)


def reward_components(config: TrainerConfig, template_default: list[dict]) -> list[dict]:
    """The reward components as plain dicts; the template default when none are given."""
    if not config.reward.components:
        return [dict(c) for c in template_default]
    return [c.model_dump() for c in config.reward.components]
