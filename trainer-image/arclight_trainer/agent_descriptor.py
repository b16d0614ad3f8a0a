"""`arclight-agent.json` in a model directory: the template and reward it was trained with.

    {"template": "math-solver", "reward": [{"name": "taskSuccess", "weight": "0.8", ...}]}

The trainer writes it next to the weights (final model and checkpoints); the model server
reads it to run the trained agent (`POST /v1/agent/run`), not only bare chat. Stdlib only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DESCRIPTOR_FILE = "arclight-agent.json"


def write_agent_descriptor(directory: Path, template_name: str, components: list[dict]) -> Path:
    """Write the descriptor of an agent trained with `template_name` and reward `components`."""
    if not template_name:
        raise ValueError("an agent descriptor needs a template name")
    body = {"template": template_name, "reward": [dict(c) for c in components]}
    path = Path(directory) / DESCRIPTOR_FILE
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def read_agent_descriptor(directory: Path) -> dict | None:
    """The descriptor in `directory`; None when there is none, ValueError when it is malformed."""
    path = Path(directory) / DESCRIPTOR_FILE
    if not path.is_file():
        return None
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not a readable JSON file: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("template"), str) or not body[
            "template"]:
        raise ValueError(f'{path} must be an object with a "template" name')
    reward = body.get("reward", [])
    if not isinstance(reward, list) or not all(isinstance(c, dict) for c in reward):
        raise ValueError(f'{path}: "reward" must be a list of component objects')
    return {"template": body["template"], "reward": reward}
