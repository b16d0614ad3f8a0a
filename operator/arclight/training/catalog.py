"""What the operator knows about the ten templates and the defaults magic train starts from.

The templates themselves (agent, reward, sample data) live in the trainer image
(`arclight_trainer.templates`); this catalog holds only the facts the operator needs to
resolve `auto` without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

DEFAULT_MODEL = "smollm2-135m-instruct"
"""The base model `auto` resolves to: the only one available offline."""

GENERIC_REWARD: tuple[dict[str, Any], ...] = (
    {"name": "taskSuccess", "weight": "0.8", "params": {}},
    {"name": "format", "weight": "0.2", "params": {}},
)
"""Reward of every template unless the run lists its own components."""


@dataclass(frozen=True)
class TemplateInfo:
    """One template as the operator sees it."""

    name: str
    task_type: str
    sample_rows: int
    """Rows in the bundled sample dataset (`sample://NAME`)."""
    max_new_tokens: int
    sample_format: str = "jsonl"
    default_reward: tuple[dict[str, Any], ...] = field(default=GENERIC_REWARD)


TEMPLATES: MappingProxyType[str, TemplateInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            TemplateInfo("customer-support", "support", 60, 96),
            TemplateInfo("coding-assistant", "code", 60, 128),
            TemplateInfo("sql-agent", "sql", 76, 96),
            TemplateInfo("research-assistant", "research", 90, 96),
            TemplateInfo("content-writer", "writing", 60, 160),
            TemplateInfo("task-planner", "planning", 72, 128),
            TemplateInfo("math-solver", "math", 240, 48),
            TemplateInfo("document-qa", "qa", 72, 64),
            TemplateInfo("email-responder", "email", 60, 160),
            TemplateInfo("meeting-scheduler", "scheduling", 72, 64),
        )
    }
)


@dataclass(frozen=True)
class AlgorithmDefaults:
    """Starting hyperparameters of one algorithm; learning rates depend on the adapter."""

    learning_rates: MappingProxyType[str, str]
    group_size: int
    kl_coef: str
    clip_range: str
    scheduler: str
    warmup_steps: int
    temperature: str


def _rates(lora: str, last_layers: str, full: str) -> MappingProxyType[str, str]:
    return MappingProxyType({"lora": lora, "last-layers": last_layers, "full": full})


ALGORITHMS: MappingProxyType[str, AlgorithmDefaults] = MappingProxyType(
    {
        "grpo": AlgorithmDefaults(
            _rates("1e-4", "5e-5", "1e-5"), 4, "0.02", "0.2", "constant", 0, "1.0"
        ),
        "ppo": AlgorithmDefaults(
            _rates("5e-5", "2e-5", "5e-6"), 2, "0.05", "0.2", "constant", 0, "1.0"
        ),
        "apo": AlgorithmDefaults(
            _rates("1e-4", "5e-5", "1e-5"), 2, "0", "0.2", "constant", 0, "0.7"
        ),
        "sft": AlgorithmDefaults(_rates("2e-4", "1e-4", "2e-5"), 1, "0", "0.2", "cosine", 2, "0.7"),
    }
)

COMMON_HYPERPARAMETERS = MappingProxyType(
    {"optimizer": "adamw", "gradientAccumulation": 1, "rewardScale": "1", "rewardClip": "5"}
)

CPU_BATCH_SIZE = 4
"""Prompts per step on CPU: small enough for a 135M model on two cores."""
GPU_BATCH_SIZE = MappingProxyType(
    {"t4": 8, "l4": 8, "a10": 8, "v100": 16, "a100": 32, "h100": 32, "h200": 32}
)
"""Prompts per step per GPU by GPU type (roughly by GPU memory)."""
CPU_MAX_STEPS = 20
"""Cap on `auto` steps on CPU so a default run ends in minutes."""
UNKNOWN_SIZE_STEPS = {"cpu": CPU_MAX_STEPS, "verl": 200}
"""`auto` steps when the dataset size is not known before training."""

# What each trainer backend implements (the trainer checks the same table before it starts).
BACKEND_ALGORITHMS = MappingProxyType({"cpu": ("grpo",), "verl": ("grpo", "ppo")})

# A CPU request, not a limit: the trainer bursts to every core the node has free.
CPU_RESOURCES = MappingProxyType({"cpu": "1", "memory": "4Gi"})
GPU_RESOURCES_PER_GPU = MappingProxyType({"cpu": 4, "memoryGi": 16})
ROLLOUTS = MappingProxyType(
    {"cpu": {"workers": 2, "concurrency": 12}, "verl": {"workers": 4, "concurrency": 16}}
)
"""Runner processes and rollouts per runner. On CPU 24 rollouts run at once: a default step
(4 prompts x 4 samples) and a validation split of up to 24 items each generate a turn as one
batch (24 greedy answers of 48 tokens: 12.1 s as one batch, 15.2 s as 16 + 8)."""
