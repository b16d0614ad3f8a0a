"""Trainer failures: exit codes and the termination message the operator's diagnosis reads
(the contract: ExitCode, FailureReason, TerminationReport in arclight.api.trainer)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

from arclight.api.trainer import TERMINATION_LOG, ExitCode, FailureReason, TerminationReport


@dataclass
class TrainerFailure(Exception):
    """A classified failure (or a preemption); `reason` picks the exit code
    (docs/architecture.md)."""

    reason: FailureReason
    message: str
    suggestions: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.reason = FailureReason(self.reason)

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"

    @property
    def exit_code(self) -> ExitCode:
        return self.reason.exit_code

    def report(self) -> TerminationReport:
        return TerminationReport(reason=self.reason, message=self.message,
                                 suggestions=list(self.suggestions))


def termination_log_path() -> str:
    """Where the termination JSON goes (env ARCLIGHT_TERMINATION_LOG overrides)."""
    return os.environ.get("ARCLIGHT_TERMINATION_LOG", TERMINATION_LOG)


def write_termination(failure: TrainerFailure) -> None:
    """Write the failure JSON to the termination log (and stderr) for the operator."""
    report = failure.report()
    ended = "stopped" if failure.reason is FailureReason.PREEMPTED else "failed"
    print(f"arclight-trainer {ended}: {report.model_dump_json()}", file=sys.stderr, flush=True)
    text = report.to_json()
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
