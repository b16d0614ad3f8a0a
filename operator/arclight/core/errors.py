"""The error classes every reconcile maps to a user-visible outcome.

- ``InvalidSpec``: the spec cannot be acted on (permanent): a condition naming the field and
  one Warning Event; no retry until the object changes.
- ``DependencyNotReady``: something the object references is not there yet (a CreditBudget,
  a TrainingRun without a checkpoint): a condition with its own reason, a requeue, no Warning;
  the object heals by itself when the dependency appears.
Anything else (API errors, bugs) is transient: retried with backoff by the frame.
"""
from __future__ import annotations


class InvalidSpec(ValueError):
    """The spec cannot be acted on; the message names the field and what to change."""


class DependencyNotReady(Exception):
    """A referenced object is missing or not ready; the message says what is awaited."""

    def __init__(self, message: str, reason: str = "DependencyNotReady",
                 retry_after: float = 10.0) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after
