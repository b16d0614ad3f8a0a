"""Trainer failures: exit codes and the termination message the operator's diagnosis reads."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

EXIT_CODES = {"DatasetInvalid": 2, "Diverged": 3, "RewardError": 4, "OutOfMemory": 5,
              "ConfigInvalid": 6, "RolloutsFailed": 7}


@dataclass
class TrainerFailure(Exception):
    """A classified failure; `reason` picks the exit code (docs/architecture.md)."""

    reason: str
    message: str
    suggestions: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.reason, 1)

    def document(self) -> dict:
        return {"reason": self.reason, "message": self.message, "suggestions": self.suggestions}


def termination_log_path() -> str:
    """Where the termination JSON goes (env ARCLIGHT_TERMINATION_LOG overrides)."""
    return os.environ.get("ARCLIGHT_TERMINATION_LOG", "/dev/termination-log")


def write_termination(failure: TrainerFailure) -> None:
    """Write the failure JSON to the termination log (and stderr) for the operator."""
    text = json.dumps(failure.document())
    print(f"arclight-trainer failed: {text}", file=sys.stderr, flush=True)
    try:
        with open(termination_log_path(), "w") as fh:
            fh.write(text)
    except OSError as exc:
        print(f"cannot write termination log: {exc}", file=sys.stderr)


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a caught CUDA or CPU allocation failure."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc)
    return name == "OutOfMemoryError" or "out of memory" in text.lower() or (
        "DefaultCPUAllocator" in text and "allocate" in text)
