"""TrainerConfig documents for the trainer tests (a module of its own: `conftest` names collide
across test folders)."""

from __future__ import annotations

from pathlib import Path


def base_config(tmp_path: Path, **overrides) -> dict:
    """A small, fast math-solver TrainerConfig; `overrides` replace top-level sections."""
    config = {
        "apiVersion": "arclight.dev/v1alpha1", "kind": "TrainerConfig",
        "run": {"name": "t", "namespace": "test", "attempt": 1},
        "template": "math-solver",
        "dataset": {"uri": "sample://math-solver", "format": "auto",
                    "validationFraction": "0.02"},
        "model": {"base": "smollm2-135m-instruct", "adapter": "last-layers"},
        "hyperparameters": {"learningRate": "1e-4", "batchSize": 1, "groupSize": 2,
                            "maxSteps": 1, "maxNewTokens": 8, "klCoef": "0.02"},
        "rollouts": {"workers": 2, "concurrency": 8, "timeoutSeconds": 120},
        "checkpoint": {"everySteps": 0, "keep": 1, "dir": str(tmp_path / "artifacts")},
        "seed": 7,
    }
    config.update(overrides)
    return config
