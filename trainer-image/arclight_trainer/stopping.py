"""SIGTERM (a suspended or deleted Job): stop at the next step boundary, after a checkpoint.

The handler only sets a flag. The training loop looks at it between steps, and waits for
rollouts poll it and leave by raising `Stopped`; nothing is cut off half-way through an
optimizer step. The backend then stops the Agent Lightning processes, saves the last
completed step and exits Preempted (`ExitCode.PREEMPTED`).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

from arclight.api.trainer import FailureReason

from .failures import TrainerFailure


class Stopped(Exception):
    """Raised where the trainer noticed a stop request: a wait left or a step not begun."""


class StopSignal:
    """A stop request: set by `request` (the SIGTERM handler), read by `check`."""

    def __init__(self) -> None:
        self.requested_at: float | None = None
        #: Set once the training loop can stop at a step boundary; before that (model load,
        #: starting the servers) there is nothing to checkpoint and a request ends the run at
        #: once (the trainer is PID 1 of its container: an unhandled SIGTERM would be
        #: ignored until the grace period's SIGKILL).
        self.armed = False

    def request(self, *_signal: object) -> None:
        """Ask the trainer to stop (nothing is printed here: a handler must not write to a
        stream the interrupted code may be writing to)."""
        if self.requested_at is None:
            self.requested_at = time.monotonic()
        if not self.armed:
            raise TrainerFailure(FailureReason.PREEMPTED,
                                 "stopped by SIGTERM before training began: nothing to "
                                 "checkpoint", ["A later attempt starts at step 1."])

    def check(self) -> None:
        """Raise Stopped once a stop was requested."""
        if self.requested_at is not None:
            raise Stopped

    def seconds(self) -> float:
        """Seconds since the request (0 when none came)."""
        return 0.0 if self.requested_at is None else time.monotonic() - self.requested_at

    @contextmanager
    def on_sigterm(self) -> Iterator[StopSignal]:
        """Make SIGTERM a stop request in the `with` body (the previous handler after it)."""
        previous = signal.signal(signal.SIGTERM, self.request)
        try:
            yield self
        finally:
            signal.signal(signal.SIGTERM, previous)
