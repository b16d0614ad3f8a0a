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
CREDITS_USED = Counter("arclight_credits_used",
                       "Credits of the usage slices this replica wrote to the ledger, by "
                       "budget (empty: none), namespace, owner kind and GPU type.",
                       ["budget", "namespace", "kind", "gpu_type"])
BUDGET_REMAINING = Gauge("arclight_budget_remaining_credits",
                         "Credits left in each budget's current period.", ["budget"])
METERING_LAG = Gauge("arclight_metering_lag_seconds",
                     "Seconds since the last metering round that reached the ledger.")
LEDGER_ERRORS = Counter("arclight_ledger_errors",
                        "Metering rounds that could not reach the ledger.")
BUDGET_NOTIFICATIONS = Counter("arclight_budget_notifications_total",
                               "CreditBudget webhook attempts, by result: delivered, failed "
                               "(retried later) or gave_up.", ["result"])
