"""CreditBudget webhooks: an outbox in the ledger, filled and emptied after each metering round.

Each round (the meter's, once its snapshot is measured) first owes, in the ledger, every
notification the budgets' standings imply (:func:`arclight.metering.notifications.owed`;
once per key, whichever replica writes it first), then claims the rows that are due with a
lease (``FOR UPDATE SKIP LOCKED``: two replicas never claim one row), reads each target's URL
and signing key from the Secrets it names (in the operator's namespace), POSTs (up to
:data:`WORKERS` at once, 5 s each) and marks each row delivered, due again on the backoff
schedule, or given up. Rows outlive restarts; a replica that dies mid-POST leaves its lease
to expire and the row is sent again (at least once: receivers dedupe on the body's ``id``).

A row whose target left ``spec.notify``, or no longer subscribes to its event, is given up at
once; one whose budget is gone or invalid is retried on the schedule (an invalid spec may be
fixed). Secrets and URLs are neither logged nor stored: errors are short reasons.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from arclight.api.common import SecretKeyRef
from arclight.api.creditbudget import BudgetNotification, CreditBudgetSpec
from arclight.clients import webhooks
from arclight.clients.kube import ApiError
from arclight.clients.ledger import Ledger, LedgerUnavailable
from arclight.clients.ledger_outbox import ClaimedNotification
from arclight.core.costs import Metering
from arclight.framework import metrics
from arclight.framework.context import OperatorContext
from arclight.metering import notifications

log = logging.getLogger(__name__)
#: Reads one Secret key of the operator's namespace: its value, None when there is none.
SecretReader = Callable[[SecretKeyRef], str | None]
#: Rows claimed per round, POSTs at once, and how long a claim is held.
CLAIM_LIMIT = 32
WORKERS = 8
LEASE = datetime.timedelta(seconds=120)


class Undeliverable(Exception):
    """The row cannot be attempted (a missing Secret, say); the message says why."""

    def __init__(self, message: str, give_up: bool = False) -> None:
        super().__init__(message)
        self.give_up = give_up


class Notifier:
    """Owes and delivers the notifications of every budget (one per operator replica)."""

    def __init__(self, ctx: OperatorContext, ledger: Ledger,
                 read_secret: SecretReader | None = None) -> None:
        self.ctx, self.ledger = ctx, ledger
        self.read_secret = read_secret or self._kube_secret

    def round(self, budgets: Mapping[str, CreditBudgetSpec], snapshot: Metering,
              now: datetime.datetime) -> None:
        """Owe what ``snapshot`` implies, then attempt what is due at ``now``; a ledger that
        cannot be reached (or a snapshot that could not) waits for the next round."""
        if not snapshot.enabled or snapshot.error:
            return
        try:
            self.ledger.enqueue_notifications(
                [n for name, spec in budgets.items() if name in snapshot.budgets
                 for n in notifications.owed(name, spec, snapshot.budgets[name])], now)
            claimed = self.ledger.claim_due(now, CLAIM_LIMIT, LEASE)
            if not claimed:
                return
            with ThreadPoolExecutor(min(WORKERS, len(claimed)),
                                    thread_name_prefix="arclight-notify") as pool:
                errors = list(pool.map(lambda c: self.attempt(c, budgets, now), claimed))
            for claim, error in zip(claimed, errors, strict=True):
                self.record(claim, error, now)
        except LedgerUnavailable as exc:
            log.warning("budget notifications wait for the ledger: %s", exc)

    def attempt(self, claim: ClaimedNotification, budgets: Mapping[str, CreditBudgetSpec],
                now: datetime.datetime) -> Undeliverable | None:
        """One POST of a claimed row; None when it was delivered."""
        try:
            target = self.target(claim, budgets.get(claim.budget))
            ref = target.secret_ref
            url = self.secret_value(ref) if ref else str(target.url)
            if ref and not url.startswith(("http://", "https://")):
                raise Undeliverable(f"{self.where(ref)} does not hold an http(s) URL")
            key = (self.secret_value(target.signing_secret_ref)
                   if target.signing_secret_ref else None)
        except Undeliverable as exc:
            return exc
        except Exception as exc:  # the API server unreachable, say: this row waits, not all
            log.warning("CreditBudget %s: cannot read its notify Secrets", claim.budget,
                        exc_info=True)
            return Undeliverable(f"cannot read the target's Secrets: {type(exc).__name__}")
        error = webhooks.post(url, notifications.body(claim.payload), key,
                              int(now.timestamp()))
        return Undeliverable(error) if error else None

    def target(self, claim: ClaimedNotification,
               spec: CreditBudgetSpec | None) -> BudgetNotification:
        """The ``spec.notify`` entry the row was owed to."""
        if spec is None:
            raise Undeliverable(f"CreditBudget {claim.budget} is gone or invalid")
        for target in spec.notify:
            if notifications.target_key(target) == claim.target:
                if claim.event not in target.events:
                    raise Undeliverable(f"the target no longer subscribes to {claim.event}",
                                        give_up=True)
                return target
        raise Undeliverable("the target is no longer in spec.notify", give_up=True)

    def record(self, claim: ClaimedNotification, error: Undeliverable | None,
               now: datetime.datetime) -> None:
        """Mark the attempt in the ledger, count it and say so (never the URL)."""
        what = (f"CreditBudget {claim.budget} {claim.event} "
                f"({claim.payload.get('threshold')}%, id {claim.payload.get('id')})")
        if error is None:
            self.ledger.mark_delivered(claim.id, now)
            metrics.BUDGET_NOTIFICATIONS.labels("delivered").inc()
            log.info("%s delivered (attempt %d)", what, claim.attempts)
            return
        retry = None if error.give_up else notifications.retry_at(claim.attempts, now)
        self.ledger.mark_failed(claim.id, claim.attempts, retry, str(error))
        if retry is None:
            metrics.BUDGET_NOTIFICATIONS.labels("gave_up").inc()
            log.warning("%s given up after attempt %d: %s", what, claim.attempts, error)
        else:
            metrics.BUDGET_NOTIFICATIONS.labels("failed").inc()
            log.warning("%s attempt %d failed (%s); next at %s", what, claim.attempts, error,
                        retry.isoformat())

    # --- Secrets ---------------------------------------------------------------------------

    def where(self, ref: SecretKeyRef) -> str:
        """Names a Secret key: ``Secret <namespace>/<name> key <key>``."""
        return f"Secret {self.ctx.settings.namespace}/{ref.name} key {ref.key}"

    def secret_value(self, ref: SecretKeyRef) -> str:
        """The value of a Secret key, surrounding whitespace removed."""
        try:
            value = self.read_secret(ref)
        except ApiError as exc:
            raise Undeliverable(f"cannot read {self.where(ref)}: HTTP {exc.status}") from None
        if not value or not value.strip():
            raise Undeliverable(f"{self.where(ref)} is missing or empty")
        return value.strip()

    def _kube_secret(self, ref: SecretKeyRef) -> str | None:
        secret = self.ctx.kube.get("v1", "Secret", ref.name, self.ctx.settings.namespace)
        data = ((secret or {}).get("data") or {}).get(ref.key)
        if data is None:
            return None
        try:
            return base64.b64decode(data).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Undeliverable(f"{self.where(ref)} is not UTF-8 text") from None
