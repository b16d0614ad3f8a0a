"""The storage meter: the artifact claims (``arclight.metering.storage``) to the ledger.

The meter calls it each round. :meth:`StorageMeter.observe` lists the claims once (one LIST of
PersistentVolumeClaims, cluster-wide, kept to the watched namespaces: no server-side selector
picks claims by a set of names or by a finalizer) and puts the metering finalizer on each
metered claim lacking it, before the ledger is touched, so that a claim deleted while Postgres
is down stays until its usage is written. :meth:`StorageMeter.write` writes their slices
(key ``(claim uid, slot)``, owner kind ``PersistentVolumeClaim``) and releases the finalizer
of claims whose final slice is written; :meth:`StorageMeter.live` is the part not written yet.
"""
from __future__ import annotations

import datetime
import functools
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from arclight.api.creditbudget import CreditBudgetSpec, Rates
from arclight.clients.kube import ApiError
from arclight.clients.ledger import Ledger
from arclight.core.names import METERING_FINALIZER
from arclight.framework import metrics
from arclight.framework.context import OperatorContext
from arclight.metering import pricing, storage, usage
from arclight.metering.model import Metered, PodUsage, UsageSlice
from arclight.metering.selection import charged_budget

log = logging.getLogger(__name__)
Obj = dict[str, Any]


class StorageMeter:
    """The claims part of the meter's rounds (same thread, same ledger)."""

    def __init__(self, ctx: OperatorContext, ledger: Ledger) -> None:
        self.ctx, self.ledger = ctx, ledger
        self.written: dict[str, tuple[datetime.datetime, bool]] = {}
        #: The metered claims of the latest round.
        self.claims: list[Metered] = []

    def observe(self, selecting: Mapping[str, tuple[str, ...]]) -> None:
        """Find this round's metered claims (``selecting``: the budgets of each namespace)
        and hold each with the metering finalizer."""
        watched = set(self.ctx.settings.watch_namespaces)
        named = storage.named_claims(set(selecting), self.ctx.settings.artifacts_claim,
                                     self.ctx.objects.of_kind("TrainingRun"))
        found = []
        for obj in self.ctx.kube.list("v1", storage.CLAIM_KIND, None):
            meta = obj["metadata"]
            if (watched and meta.get("namespace") not in watched) or not storage.is_metered(
                    obj, named):
                continue
            claim: PodUsage | None
            try:
                claim = storage.claim_usage(obj)
            except ValueError as exc:  # say so, never block its deletion
                log.warning("claim %s/%s not metered: %s", meta.get("namespace"),
                            meta.get("name"), exc)
                claim = None
            found.append(Metered(obj, claim, charged_budget(
                None, selecting.get(meta.get("namespace") or "", ()))))
            finalizers = list(meta.get("finalizers") or [])
            if (claim is not None and not meta.get("deletionTimestamp")
                    and METERING_FINALIZER not in finalizers):
                self._finalize(obj, [*finalizers, METERING_FINALIZER])
        self.claims = found

    def write(self, budgets: Mapping[str, CreditBudgetSpec], now: datetime.datetime) -> None:
        """Write every new slice of the claims, then release those fully written."""
        metered = [c.usage for c in self.claims if c.usage is not None]
        unknown = [c.pod_uid for c in metered if c.pod_uid not in self.written]
        if unknown:
            self.written.update(self.ledger.written_until(unknown))
        batch: list[UsageSlice] = []
        for c in self.claims:
            if c.usage is None:
                continue
            until = self.written.get(c.usage.pod_uid)
            if until is not None and until[1]:
                continue  # its final slice is in the ledger
            spec = budgets.get(c.budget or "")
            price = functools.partial(storage.credit_seconds,
                                      spec.rates if spec else pricing.DEFAULT_RATES)
            batch.extend(usage.slices(c.usage, now, until[0] if until else None, price,
                                      c.budget))
        if batch:
            self.ledger.write(batch)
            for piece in batch:
                self.written[piece.pod.pod_uid] = (piece.end, piece.final)
                metrics.CREDITS_USED.labels(piece.budget or "", piece.pod.namespace,
                                            storage.CLAIM_KIND, "none").inc(
                    float(piece.credit_seconds / 3600))
        for c in self.claims:
            self.release(c)
        seen = {c.pod_uid for c in metered}
        self.written = {uid: mark for uid, mark in self.written.items() if uid in seen}

    def release(self, claim: Metered) -> None:
        """Remove the metering finalizer once the claim's usage is all written (or, when its
        usage is unreadable, once it is being deleted)."""
        remaining = usage.released_finalizers(claim.obj["metadata"], claim.usage, self.written)
        if remaining is not None:
            self._finalize(claim.obj, remaining)

    def live(self, budget: str, rates: Rates, since: datetime.datetime,
             now: datetime.datetime) -> dict[str, Decimal]:
        """Credit-seconds per namespace of ``budget``'s claims since ``since`` (a period's
        start) that are not in the ledger yet."""
        found: dict[str, Decimal] = {}
        for c in self.claims:
            if c.usage is None or c.budget != budget:
                continue
            written = self.written.get(c.usage.pod_uid)
            if written is not None and written[1]:
                continue
            seconds = usage.unwritten_seconds(c.usage, now, written[0] if written else None,
                                              since)
            if seconds:
                ns = c.usage.namespace
                found[ns] = pricing.EXACT.add(found.get(ns, Decimal(0)),
                                              storage.credit_seconds(rates, c.usage, seconds))
        return found

    def _finalize(self, obj: Obj, finalizers: list[str]) -> None:
        """Set the claim's finalizers (to this round's version of it)."""
        meta = obj["metadata"]
        patch = {"metadata": {"finalizers": finalizers,
                              "resourceVersion": meta["resourceVersion"]}}
        try:
            self.ctx.kube.merge_patch({"apiVersion": "v1", "kind": storage.CLAIM_KIND,
                                       "metadata": meta}, patch)
            metrics.API_WRITES.labels("patch", storage.CLAIM_KIND).inc()
        except ApiError as exc:
            if exc.status not in (404, 409):  # gone, or changed: the next round sees it
                raise
