"""The meter: every pod the operator owns, to the ledger, and a snapshot for the plans.

Each round (``ARCLIGHT_METERING_INTERVAL``, 30 s by default) it takes the metered pods from
the pod index, cuts what they used into slices from the pods' own timestamps
(``arclight.metering.usage``), prices each slice at the rates of the budget that pays for it,
writes the new slices to the ledger in one batch (idempotent: a restart, a retry or a second
replica never counts a second twice), releases the metering finalizer of pods whose last
slice is written, records each budget's period grant and rollover, reads the figures back
and publishes one :class:`~arclight.core.costs.Metering` snapshot. Budgets and the owners
whose cost changed are queued for a pass. Artifact claims are metered alongside, into the
same ledger and budgets (``arclight.framework.storage_meter``).

When Postgres cannot be reached the round stops there: the snapshot keeps its last figures
with the error (budgets show ``LedgerUnavailable``), finalizers hold deleted pods, runs go on
reconciling, and the next round writes everything the pods' timestamps say.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import logging
import threading
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from arclight.api.creditbudget import CreditBudgetSpec, Rates
from arclight.budgets.plan import origin as budget_origin
from arclight.budgets.validation import validate_creditbudget
from arclight.clients.kube import ApiError
from arclight.clients.ledger import Ledger, LedgerUnavailable
from arclight.core.costs import (
    BudgetUsage,
    Limits,
    Metering,
    Notifications,
    OwnerCost,
    exact_sum,
)
from arclight.core.errors import InvalidSpec
from arclight.framework import metrics
from arclight.framework.context import OperatorContext
from arclight.framework.notifier import Notifier
from arclight.framework.request_meter import RequestMeter
from arclight.framework.storage_meter import StorageMeter
from arclight.metering import periods, pricing, usage
from arclight.metering.model import Metered, PodUsage, UsageSlice
from arclight.metering.selection import charged_budget, namespace_budgets

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class Meter:
    """One metering loop per operator (a thread; rounds never overlap)."""

    def __init__(self, ctx: OperatorContext, ledger: Ledger, interval: float) -> None:
        self.ctx, self.ledger, self.interval = ctx, ledger, interval
        self.written: dict[str, tuple[datetime.datetime, bool]] = {}
        self.migrated = False
        self._stop = threading.Event()
        self.notifier = Notifier(ctx, ledger)
        self.storage = StorageMeter(ctx, ledger)  # artifact claims
        self.requests = RequestMeter(ledger)
        self._owner_keys: dict[str, tuple[str, str, str]] = {}
        #: (budget, adjustment) pairs known to be in the ledger.
        self._adjusted: set[tuple[str, str]] = set()

    # --- the loop --------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.loop, name="arclight-meter", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()

    def loop(self) -> None:
        """Run rounds until stopped; a bug in one round is logged, never fatal."""
        while not self._stop.is_set():
            try:
                self.round(datetime.datetime.now(datetime.UTC))
            except Exception:  # never let metering take the operator down
                log.exception("metering round failed; trying again in %.0fs", self.interval)
            self._stop.wait(self.interval)

    def round(self, now: datetime.datetime) -> Metering:
        """One round at ``now``; returns (and publishes) the new snapshot."""
        previous = self.ctx.metering
        budgets = self.budgets()
        pods = self.pods()
        selecting = namespace_budgets({n: s.namespace_selector for n, s in budgets.items()},
                                      self.namespace_labels())
        for pod in pods:
            if pod.usage is not None:
                pod.budget = charged_budget(self.budget_ref(pod.usage),
                                            selecting.get(pod.usage.namespace, ()))
        self.storage.observe(selecting)  # before the ledger: each claim gets its finalizer
        try:
            self.ensure_schema()
            self.write(pods, budgets, now)
            self.storage.write(budgets, now)
            self.requests.round([p.obj for p in pods], now)
            budget_usage = {name: self.budget_figures(name, spec, pods, now)
                            for name, spec in budgets.items()}
            owners = self.owner_costs(pods, budgets, now)
        except LedgerUnavailable as exc:
            metrics.LEDGER_ERRORS.inc()
            if previous.measured_at is not None:
                metrics.METERING_LAG.set((now - previous.measured_at).total_seconds())
            snapshot = dataclasses.replace(previous, enabled=True, error=str(exc),
                                           namespace_budgets=selecting)
            log.warning("ledger unavailable: %s", exc)
        else:
            snapshot = Metering(enabled=True, measured_at=now, owners=owners,
                                budgets=budget_usage, namespace_budgets=selecting)
            metrics.METERING_LAG.set(0)
            for name, figures in budget_usage.items():
                metrics.BUDGET_REMAINING.labels(name).set(
                    figures.granted - pricing.credits(figures.credit_seconds))
        self.ctx.metering = snapshot
        self.queue_changes(previous, snapshot, budgets)
        self.notifier.round(budgets, snapshot, now)
        return snapshot

    # --- what there is -------------------------------------------------------------------

    def pods(self) -> list[Metered]:
        """The metered pods the index holds (every pod an owner of ours labels)."""
        found = []
        for obj in self.ctx.children.all_of("pods"):
            try:
                pod = usage.pod_usage(obj)
                if pod is not None:  # a price must exist (an unknown GPU type has none)
                    pricing.hourly_rate(pricing.DEFAULT_RATES, pod.gpu_type, pod.gpu_count,
                                        pod.cpu_millis, pod.memory_bytes)
            except ValueError as exc:  # unreadable resources: say so, never block deletion
                log.warning("pod %s/%s not metered: %s", obj["metadata"].get("namespace"),
                            obj["metadata"].get("name"), exc)
                pod = None
            found.append(Metered(obj, pod))
        return found

    def budgets(self) -> dict[str, CreditBudgetSpec]:
        """Valid budgets by name (an invalid one charges nothing; its status says why)."""
        found = {}
        for obj in self.ctx.objects.of_kind("CreditBudget"):
            try:
                found[obj["metadata"]["name"]] = validate_creditbudget(obj)
            except InvalidSpec:
                continue
        return found

    def namespace_labels(self) -> dict[str, Mapping[str, str]]:
        """Every namespace's labels (one LIST per round)."""
        return {ns["metadata"]["name"]: dict(ns["metadata"].get("labels") or {})
                for ns in self.ctx.kube.list("v1", "Namespace", None)}

    def budget_ref(self, pod: PodUsage) -> str | None:
        """The ``spec.budgetRef`` of the pod's owner, if it names one."""
        owner = self.ctx.objects.get((pod.owner_kind, pod.namespace, pod.owner_name))
        ref = ((owner or {}).get("spec") or {}).get("budgetRef")
        return str(ref) if ref else None

    # --- writing -------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        if not self.migrated:
            self.ledger.migrate()
            self.migrated = True

    def write(self, pods: list[Metered], budgets: Mapping[str, CreditBudgetSpec],
              now: datetime.datetime) -> None:
        """Write every new slice, then release the finalizers of fully written pods."""
        metered = [p for p in pods if p.usage is not None]
        unknown = [p.usage.pod_uid for p in metered if p.usage and
                   p.usage.pod_uid not in self.written]
        if unknown:
            self.written.update(self.ledger.written_until(unknown))
        batch: list[UsageSlice] = []
        for pod in metered:
            assert pod.usage is not None
            rates = rates_of(budgets, pod.budget)
            until = self.written.get(pod.usage.pod_uid)
            if until is not None and until[1]:
                continue  # its final slice is in the ledger
            batch.extend(usage.slices(pod.usage, now, until[0] if until else None,
                                      functools.partial(pricing.credit_seconds, rates),
                                      pod.budget))
        if batch:
            self.ledger.write(batch)
            for piece in batch:
                self.written[piece.pod.pod_uid] = (piece.end, piece.final)
                metrics.CREDITS_USED.labels(piece.budget or "", piece.pod.namespace,
                                            piece.pod.owner_kind, piece.pod.gpu_type).inc(
                    float(piece.credit_seconds / 3600))
        for pod in pods:
            self.release(pod)
        seen = {p.usage.pod_uid for p in metered if p.usage}
        self.written = {uid: mark for uid, mark in self.written.items() if uid in seen}

    def release(self, pod: Metered) -> None:
        """Remove the metering finalizer once the pod's usage is all written (or it never
        ran and is being deleted)."""
        meta = pod.obj["metadata"]
        remaining = usage.released_finalizers(meta, pod.usage, self.written)
        if remaining is None:
            return
        patch = {"metadata": {"finalizers": remaining, "resourceVersion": meta["resourceVersion"]}}
        try:
            self.ctx.kube.merge_patch({"apiVersion": "v1", "kind": "Pod", "metadata": meta},
                                      patch)
            metrics.API_WRITES.labels("patch", "Pod").inc()
        except ApiError as exc:
            if exc.status not in (404, 409):  # gone, or changed: the next round sees it
                raise

    # --- reading back ----------------------------------------------------------------------

    def budget_figures(self, name: str, spec: CreditBudgetSpec, pods: list[Metered],
                       now: datetime.datetime) -> BudgetUsage:
        """The budget's period: grants recorded (idempotently), usage from the ledger plus
        the live part of its running pods not written yet."""
        obj = self.ctx.objects.get(("CreditBudget", None, name)) or {}
        origin = budget_origin(obj, now)
        window = periods.window(spec.period, now, origin)
        generation = int((obj.get("metadata") or {}).get("generation") or 0)
        granted = self.grant(name, spec, window, origin, generation)
        by_namespace = dict(self.ledger.budget_usage(name, window.start, window.end))
        for pod in pods:
            if pod.usage is None or pod.budget != name:
                continue
            live = self.live_seconds(pod.usage, now, window.start)
            if live:
                ns = pod.usage.namespace
                spent = pricing.credit_seconds(spec.rates, pod.usage, live)
                by_namespace[ns] = pricing.EXACT.add(by_namespace.get(ns, Decimal(0)), spent)
        for ns, stored in self.storage.live(name, spec.rates, window.start, now).items():
            by_namespace[ns] = pricing.EXACT.add(by_namespace.get(ns, Decimal(0)), stored)
        limits = Limits(spec.limits.max_runs, spec.limits.max_gpus)
        undelivered = (self.ledger.undelivered_notifications(name, window.start)
                       if spec.notify else [])
        return BudgetUsage(period_start=window.start, period_end=window.end, granted=granted,
                           by_namespace=by_namespace, enforcement=spec.enforcement,
                           limits=limits, notifications=Notifications(
                               pending=sum(1 for n in undelivered if n.next_attempt_at),
                               given_up=tuple(f"{n.event} at {n.threshold}%: {n.last_error}"
                                              for n in undelivered
                                              if n.next_attempt_at is None)))

    def grant(self, name: str, spec: CreditBudgetSpec, window: periods.Window,
              origin: datetime.datetime, generation: int) -> int:
        """Credits of the period: the grant follows ``spec.credits`` (a change mid-period is
        a grant of the difference), the rollover of the last period is recorded once, and
        each of ``spec.adjustments`` (refunds, bonuses, corrections) is recorded once, in the
        period current when it is first seen."""
        rows = self.ledger.transactions(name, window.start)
        granted = sum(t.credits for t in rows if t.kind == "grant")
        if granted != spec.credits:
            self.ledger.record_transaction(
                name, window.start, "grant", spec.credits - granted,
                key=f"generation-{generation}", note=f"spec.credits = {spec.credits}")
        if spec.rollover and not any(t.kind == "rollover" for t in rows):
            before = periods.previous(spec.period, window, origin)
            if before is not None:
                last = self.ledger.transactions(name, before.start)
                used = exact_sum(self.ledger.budget_usage(name, before.start,
                                                          before.end).values())
                left = sum(t.credits for t in last) - pricing.credits(used)
                if last and left > 0:
                    self.ledger.record_transaction(name, window.start, "rollover", left,
                                                   note=f"unused in {before.start:%Y-%m-%d}")
        for adjustment in spec.adjustments:
            if (name, adjustment.name) not in self._adjusted:
                self.ledger.record_adjustment(name, window.start, adjustment.kind,
                                              adjustment.credits, adjustment.name,
                                              adjustment.reason)
                self._adjusted.add((name, adjustment.name))
        rows = self.ledger.transactions(name, window.start)
        return sum(t.credits for t in rows)

    def live_seconds(self, pod: PodUsage, now: datetime.datetime,
                     since: datetime.datetime | None = None) -> int:
        """Seconds the pod used (after ``since``) that are not in the ledger yet."""
        written = self.written.get(pod.pod_uid)
        if written is not None and written[1]:
            return 0
        return usage.unwritten_seconds(pod, now, written[0] if written else None, since)

    def owner_costs(self, pods: list[Metered], budgets: Mapping[str, CreditBudgetSpec],
                    now: datetime.datetime) -> dict[str, OwnerCost]:
        """Cost per owner uid of the pods seen: the ledger's plus the live part."""
        metered = [p for p in pods if p.usage is not None and p.usage.owner_uid]
        self._owner_keys = {p.usage.owner_uid: (p.usage.owner_kind, p.usage.namespace,
                                                p.usage.owner_name) for p in metered if p.usage}
        found = self.ledger.owner_usage({p.usage.owner_uid for p in metered if p.usage})
        served = self.ledger.owner_requests({p.usage.owner_uid for p in metered if p.usage
                                             and p.usage.owner_kind == "ModelDeployment"})
        costs = {uid: OwnerCost(o.credit_seconds, o.gpu_seconds, served.get(uid))
                 for uid, o in found.items()}
        for pod in metered:
            assert pod.usage is not None
            live = self.live_seconds(pod.usage, now)
            if not live:
                continue
            uid = pod.usage.owner_uid
            known = costs.get(uid, OwnerCost())
            costs[uid] = OwnerCost(
                pricing.EXACT.add(known.credit_seconds, pricing.credit_seconds(
                    rates_of(budgets, pod.budget), pod.usage, live)),
                known.gpu_seconds + live * pod.usage.gpu_count, served.get(uid))
        return costs

    def queue_changes(self, before: Metering, after: Metering,
                      budgets: Mapping[str, CreditBudgetSpec]) -> None:
        """Queue every budget (its figures, or the ledger's state, may have changed) and the
        owners whose cost as shown changed: whole credits, GPU time by a minute, or requests
        (each of the first hundred, then by the hundred; a running
        pod's cost grows every round; a pass per owner per round would cost a status write
        each at scale)."""
        for name in budgets:
            self.ctx.queue.add(("CreditBudget", None, name), "metering")
        for uid, cost in after.owners.items():
            key = self._owner_keys.get(uid)
            if key is not None and shown(before.owners.get(uid)) != shown(cost):
                self.ctx.queue.add(key, "metering")


def shown(cost: OwnerCost | None) -> tuple[int, int, int] | None:
    """What a change of cost must change to be worth a pass: credits, GPU minutes, requests
    (each of the first hundred, then by the hundred)."""
    if cost is None:
        return None
    served = cost.requests or 0
    return (pricing.credits(cost.credit_seconds), cost.gpu_seconds // 60,
            min(served, 100) + served // 100)


def rates_of(budgets: Mapping[str, CreditBudgetSpec], budget: str | None) -> Rates:
    """The rates of ``budget`` (the documented defaults without one)."""
    spec = budgets.get(budget) if budget else None
    return spec.rates if spec is not None else pricing.DEFAULT_RATES
