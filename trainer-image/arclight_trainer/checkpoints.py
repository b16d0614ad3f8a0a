"""Checkpoints under `checkpoint.dir`: `step-N/` = merged model + tokenizer + trainer state.

A checkpoint directory loads with `AutoModelForCausalLM.from_pretrained`; `trainer_state.pt`
holds what resuming needs (trainable parameters, optimizer, scheduler, step, RNG). One saved
with its template also holds `arclight-agent.json` (agent_descriptor): it serves as the agent.
Reported URIs are `file://` paths unless ARCLIGHT_CHECKPOINT_URI_PREFIX (e.g.
`pvc://CLAIM/PATH`, the volume behind `checkpoint.dir`) is set.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch
from arclight.api.trainer import RESUME_LATEST

from .agent_descriptor import write_agent_descriptor
from .modeling import save_merged, trainable_state

STATE_FILE = "trainer_state.pt"
STEP_RE = re.compile(r"^step-(\d+)$")


def checkpoint_uri(root: Path, path: Path) -> str:
    """The URI the operator sees for a checkpoint path under `root`."""
    prefix = os.environ.get("ARCLIGHT_CHECKPOINT_URI_PREFIX")
    if prefix:
        return f"{prefix.rstrip('/')}/{path.relative_to(root).as_posix()}"
    return path.resolve().as_uri()


def list_steps(root: Path) -> list[tuple[int, Path]]:
    """(step, path) of complete checkpoints under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = STEP_RE.match(child.name)
        if match and (child / STATE_FILE).exists():
            found.append((int(match.group(1)), child))
    return sorted(found)


def save_checkpoint(root: Path, step: int, model, tokenizer, optimizer, scheduler,
                    keep: int, extra: dict, *, template_name: str | None = None,
                    components: list[dict] | None = None) -> Path:
    """Write `root/step-N` atomically, then keep only the newest `keep` checkpoints.

    With `template_name` the checkpoint carries an agent descriptor (template and reward
    `components`), so that serving it as the best checkpoint can run the agent.
    """
    final = root / f"step-{step}"
    partial = root / f".step-{step}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    save_merged(model, tokenizer, partial)
    if template_name:
        write_agent_descriptor(partial, template_name, components or [])
    torch.save({"step": step, "trainable": trainable_state(model),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), **extra}, partial / STATE_FILE)
    shutil.rmtree(final, ignore_errors=True)
    partial.rename(final)
    for _, old in list_steps(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def resolve_resume(resume_from: str, root: Path) -> Path | None:
    """The checkpoint directory named by `resumeFrom`: `latest` (None, a fresh start, while
    `root` holds none), a URI under the prefix, a path."""
    if resume_from == RESUME_LATEST:
        steps = list_steps(root)
        return steps[-1][1] if steps else None
    prefix = os.environ.get("ARCLIGHT_CHECKPOINT_URI_PREFIX", "").rstrip("/")
    if prefix and resume_from.startswith(prefix + "/"):
        path = root / resume_from[len(prefix) + 1:]
    else:
        path = Path(resume_from.removeprefix("file://"))
    if not (path / STATE_FILE).exists():
        raise FileNotFoundError(f"resumeFrom {resume_from}: no {STATE_FILE} in {path}")
    return path


def load_state(path: Path) -> dict:
    """The trainer state saved in checkpoint `path`."""
    return torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
