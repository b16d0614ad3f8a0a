"""The pure plan of a CreditBudget pass: its period, figures, conditions and alerts.

The figures come from ``Facts.metering`` (the meter's newest snapshot of the ledger). A
budget is only a status: it owns no children. The meter queues every budget after each
round; the plan asks for a pass at its period's end.
"""
from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from arclight.api.creditbudget import ConditionType as C
from arclight.api.creditbudget import CreditBudgetSpec
from arclight.api.creditbudget import Reason as R
from arclight.core.conditions import FALSE, TRUE, UNKNOWN, StatusBuilder
from arclight.core.costs import BudgetUsage, Metering
from arclight.core.errors import InvalidSpec
from arclight.core.facts import Facts
from arclight.core.plan import Observed, Plan
from arclight.metering import periods
from arclight.metering.occupancy import in_use
from arclight.metering.pricing import credits
from arclight.metering.standing import Standing, by_namespace, standing

WARNING_TYPES = (C.WARNING, C.EXHAUSTED, C.LEDGER_UNAVAILABLE, C.OVERLAPPING,
                 C.NOTIFY_FAILING)
#: Longest wait between passes (the meter queues budgets after each round anyway).
REFRESH_SECONDS = 300.0
#: How soon to look again while the first round of a period is not measured.
MEASURING_SECONDS = 5.0


def iso(t: datetime.datetime | None) -> str | None:
    return t.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else None


def origin(obj: Mapping[str, Any], fallback: datetime.datetime) -> datetime.datetime:
    """When the budget began (its creation), the start of a period of type ``none``."""
    created = (obj.get("metadata") or {}).get("creationTimestamp")
    return datetime.datetime.fromisoformat(str(created)) if created else fallback


def projected(used: BudgetUsage, window: periods.Window, now: datetime.datetime) -> int | None:
    """Credits at the period's end if usage goes on at this period's average burn rate."""
    fraction = window.elapsed_fraction(now)
    if fraction is None or fraction <= 0:
        return None
    return credits(used.credit_seconds * fraction.denominator / fraction.numerator)


class _Pass:
    def __init__(self, spec: CreditBudgetSpec, observed: Observed, facts: Facts) -> None:
        self.spec, self.observed, self.facts = spec, observed, facts
        self.name = observed.name
        meta = observed.obj["metadata"]
        self.st = StatusBuilder(observed.status, meta.get("generation"), facts.now_iso)
        self.status = self.st.status

    def run(self) -> Plan:
        metering = self.facts.metering
        window = periods.window(self.spec.period, self.facts.now,
                                origin(self.observed.obj, self.facts.now))
        if not metering.enabled:
            self.clear_figures()
            self.st.condition(C.ACTIVE, FALSE, R.METERING_DISABLED,
                              "The operator has no ledger (chart values `ledger.*`): nothing "
                              "is metered and this budget is not enforced.")
            return self.finish(None)
        self.status["periodStart"], self.status["periodEnd"] = (iso(window.start),
                                                                 iso(window.end))
        self.ledger_condition(metering)
        self.overlap_condition(metering)
        usage = metering.budgets.get(self.name)
        if usage is None or usage.period_start != window.start:
            self.clear_figures(keep_period=True)
            self.st.condition(C.ACTIVE, UNKNOWN, R.MEASURING,
                              f"Waiting for the first metering round of the period starting "
                              f"{iso(window.start)}.")
            return self.finish(MEASURING_SECONDS)
        figures = standing(usage)
        self.figures(usage, figures, window, metering)
        self.alerts(figures, window)
        self.notify_condition(usage)
        self.st.condition(C.ACTIVE, TRUE, R.WITHIN_BUDGET if not figures.exhausted
                          else R.CREDITS_EXHAUSTED,
                          f"Metering {len(usage.by_namespace)} namespace(s); period "
                          f"{iso(window.start)} to {iso(window.end) or 'open-ended'}.")
        until_end = ((window.end - self.facts.now).total_seconds() + 1 if window.end
                     else REFRESH_SECONDS)
        return self.finish(max(1.0, min(REFRESH_SECONDS, until_end)))

    def figures(self, usage: BudgetUsage, figures: Standing, window: periods.Window,
                metering: Metering) -> None:
        self.status.update(
            granted=figures.granted, used=figures.used, remaining=figures.remaining,
            percentUsed=figures.percent_used,
            projectedAtPeriodEnd=projected(usage, window, self.facts.now),
            byNamespace=[{"namespace": ns, "used": used} for ns, used in by_namespace(usage)],
            lastMeteredAt=iso(metering.measured_at))
        if usage.limits.any:
            held = in_use(self.facts.claims.get(self.name, ()))
            self.status.update(running=held.runs, gpusInUse=held.gpus)
        else:
            self.status.pop("running", None)
            self.status.pop("gpusInUse", None)

    def alerts(self, figures: Standing, window: periods.Window) -> None:
        """Each threshold is raised once per period: an Event when crossed, and the Warning
        and Exhausted conditions while it holds."""
        same_period = self.observed.status.get("periodStart") == iso(window.start)
        raised = set(self.observed.status.get("alertsRaised") or []) if same_period else set()
        crossed = sorted(a for a in set(self.spec.alerts) if figures.percent_used >= a)
        for threshold in crossed:
            if threshold not in raised:
                reason = "BudgetExhausted" if threshold >= 100 else "BudgetWarning"
                self.st.event(reason, f"{figures.describe(self.name)}: past the {threshold}% "
                              f"alert.", warning=True)
        self.status["alertsRaised"] = sorted(raised | set(crossed))
        below_full = [a for a in crossed if a < 100]
        if below_full:
            self.st.condition(C.WARNING, TRUE, R.THRESHOLD_CROSSED,
                              f"{figures.describe(self.name)}: past the {max(below_full)}% "
                              "alert.")
        else:
            self.st.condition(C.WARNING, FALSE, R.WITHIN_BUDGET,
                              f"{figures.describe(self.name)}.")
        if figures.exhausted:
            self.st.condition(C.EXHAUSTED, TRUE, R.CREDITS_EXHAUSTED, self.exhausted_message(
                figures, window))
        else:
            self.st.condition(C.EXHAUSTED, FALSE, R.WITHIN_BUDGET,
                              f"{figures.remaining} credits left this period.")

    def exhausted_message(self, figures: Standing, window: periods.Window) -> str:
        consequence = {"warn": "enforcement is `warn`: nothing is held",
                       "hold": "new TrainingRuns and scale-ups wait until credits return",
                       "stop": "running TrainingRuns are suspended after a checkpoint and "
                               "new work waits until credits return"}[self.spec.enforcement]
        when = f"the next period starts {iso(window.end)}" if window.end else "no new period"
        return (f"{figures.describe(self.name)}; {consequence} ({when}; or raise spec.credits, "
                "or add spec.adjustments).")

    def notify_condition(self, usage: BudgetUsage) -> None:
        """Whether this period's webhooks reached their receivers (with ``spec.notify``)."""
        if not self.spec.notify:
            return
        sent = usage.notifications
        if sent.given_up:
            self.st.condition(C.NOTIFY_FAILING, TRUE, R.WEBHOOK_GIVEN_UP, (
                f"{len(sent.given_up)} webhook(s) of this period were given up after every "
                f"retry ({'; '.join(sent.given_up[:3])}): check the receiver and "
                "spec.notify; the next threshold or period notifies again."))
        elif sent.pending:
            self.st.condition(C.NOTIFY_FAILING, FALSE, R.WEBHOOK_RETRYING,
                              f"{sent.pending} webhook(s) not delivered yet; retried with "
                              "backoff.")
        else:
            self.st.condition(C.NOTIFY_FAILING, FALSE, R.WEBHOOKS_DELIVERED,
                              "Every webhook of this period was delivered.")

    def ledger_condition(self, metering: Metering) -> None:
        if metering.error:
            since = iso(metering.measured_at) or "never"
            self.st.condition(C.LEDGER_UNAVAILABLE, TRUE, R.LEDGER_UNAVAILABLE,
                              f"The ledger cannot be reached ({metering.error}); figures are "
                              f"from {since}. Work keeps running; its usage is written when "
                              "the ledger is back.")
        else:
            self.st.condition(C.LEDGER_UNAVAILABLE, FALSE, R.LEDGER_AVAILABLE,
                              "The ledger is reachable.")

    def overlap_condition(self, metering: Metering) -> None:
        shared = sorted(ns for ns, names in metering.namespace_budgets.items()
                        if self.name in names and len(names) > 1)
        if shared:
            others = sorted({b for ns in shared for b in metering.budget_of(ns)} - {self.name})
            self.st.condition(C.OVERLAPPING, TRUE, R.OVERLAPPING_BUDGETS,
                              f"Namespace(s) {', '.join(shared)} are also selected by "
                              f"{', '.join(others)}: their work is held until one budget "
                              "selects them (narrow a namespaceSelector) or it names one in "
                              "spec.budgetRef.")
        else:
            self.st.condition(C.OVERLAPPING, FALSE, R.NO_OVERLAP,
                              "No namespace is selected by another budget.")

    def clear_figures(self, keep_period: bool = False) -> None:
        for key in ("granted", "used", "remaining", "percentUsed", "projectedAtPeriodEnd",
                    "byNamespace", "lastMeteredAt", "alertsRaised", "running", "gpusInUse",
                    *(() if keep_period else ("periodStart", "periodEnd"))):
            self.status.pop(key, None)

    def finish(self, requeue: float | None) -> Plan:
        self.status["observedGeneration"] = self.st.generation
        self.st.transition_events(WARNING_TYPES, QUIET)
        return Plan(status=self.status, events=self.st.events, requeue_after=requeue)


#: Transitions that are not news: the budget becoming active, the ledger being reachable.
QUIET = ((C.ACTIVE, TRUE, None), (C.LEDGER_UNAVAILABLE, FALSE, None),
         (C.NOTIFY_FAILING, FALSE, None),
         (C.OVERLAPPING, FALSE, None), (C.WARNING, FALSE, None), (C.EXHAUSTED, FALSE, None),
         (C.WARNING, TRUE, None), (C.EXHAUSTED, TRUE, None))


def plan(spec: CreditBudgetSpec, observed: Observed, facts: Facts) -> Plan:
    """The plan of one pass over a CreditBudget."""
    return _Pass(spec, observed, facts).run()


def on_error(observed: Observed, error: Exception, facts: Facts) -> Plan:
    """An invalid spec: Active False with the field named, one Warning; no figures."""
    meta = observed.obj["metadata"]
    st = StatusBuilder(observed.status, meta.get("generation"), facts.now_iso)
    st.condition(C.ACTIVE, FALSE, R.INVALID_SPEC, str(error))
    st.status["observedGeneration"] = meta.get("generation")
    if isinstance(error, InvalidSpec):
        st.event(R.INVALID_SPEC, str(error), warning=True)
    return Plan(status=st.status, events=st.events)
