"""Fixtures for the trainer tests: run the real trainer CLI as a subprocess."""

from __future__ import annotations

import pytest
from trainer_process import TrainerProcess, TrainerRun


@pytest.fixture
def run_trainer(tmp_path):
    """Run the trainer on a config dict to the end (bounded by `timeout` seconds)."""
    runs = 0

    def run(config: dict, timeout: float = 400) -> TrainerRun:
        nonlocal runs
        runs += 1
        return TrainerProcess(config, tmp_path / f"run-{runs}").wait(timeout)

    return run
