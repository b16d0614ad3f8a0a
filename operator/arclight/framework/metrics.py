"""Prometheus metrics of the operator (served on ``/metrics`` by the runtime)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECONCILES = Counter("arclight_reconcile_total",
                     "Reconcile passes, by kind and what queued them (resync: the initial "
                     "listing after a start; event; a child's plural; requeue; retry).",
                     ["kind", "trigger"])
RECONCILE_ERRORS = Counter("arclight_reconcile_errors_total",
                           "Passes that ended in an error, by kind and reason (InvalidSpec, "
                           "DependencyNotReady, http_<status> for API errors, else the "
                           "exception's class).", ["kind", "reason"])
RECONCILE_SECONDS = Histogram("arclight_reconcile_duration_seconds",
                              "Time spent in one pass, by kind.", ["kind"])
API_WRITES = Counter("arclight_api_writes_total",
                     "Writes the operator sent to the API server, by verb and kind.",
                     ["verb", "kind"])
QUEUE_DEPTH = Gauge("arclight_workqueue_depth", "Keys waiting for a reconcile pass.")
TRANSITIONS = Counter("arclight_condition_transitions_total",
                      "Condition transitions written, by kind, type, status and reason.",
                      ["kind", "type", "status", "reason"])
