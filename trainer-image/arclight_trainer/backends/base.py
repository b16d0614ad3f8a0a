"""The one interface every training backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from arclight.api.trainer import TrainerConfig

from ..metrics import TrainerMetrics
from ..report import Reporter
from ..templates.base import Template
from ..tracking import Tracker


@dataclass
class RunContext:
    """Everything a backend needs for one run, already validated."""

    config: TrainerConfig
    template: Template
    train_items: list[dict]
    val_items: list[dict]
    components: list[dict]
    reporter: Reporter
    metrics: TrainerMetrics
    tracker: Tracker | None
    workdir: Path


@dataclass
class RunOutcome:
    """What a finished run produced."""

    validation_before: float
    validation_after: float
    model_dir: Path
    steps: int


class Backend(ABC):
    name: str = ""

    @abstractmethod
    def run(self, ctx: RunContext) -> RunOutcome:
        """Train, evaluate before and after on the validation split, save the final model.

        Raises TrainerFailure for classified failures (Diverged, RewardError, OutOfMemory).
        """
