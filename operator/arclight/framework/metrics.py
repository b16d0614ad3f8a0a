"""Prometheus metrics of the operator (served on ``/metrics`` by arclight.runtime)."""
from __future__ import annotations

from prometheus_client import Counter, Histogram

RECONCILES = Counter("arclight_reconcile_total", "Reconciles run, by kind and trigger.",
                     ["kind", "trigger"])
RECONCILE_ERRORS = Counter("arclight_reconcile_errors_total",
                           "Reconciles that ended in an error, by kind and reason.",
                           ["kind", "reason"])
RECONCILE_SECONDS = Histogram("arclight_reconcile_duration_seconds",
                              "Time spent in one reconcile, by kind.", ["kind"])
TRANSITIONS = Counter("arclight_condition_transitions_total",
                      "Condition transitions written, by kind, type, status and reason.",
                      ["kind", "type", "status", "reason"])
