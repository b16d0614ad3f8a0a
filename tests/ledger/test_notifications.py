"""CreditBudget webhooks end to end: the outbox in a real Postgres (tests/postgres.py), real
POSTs to an HTTP server on 127.0.0.1 that checks each signature. Time is driven by explicit
``now`` values along the retry schedule; nothing sleeps."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from arclight.api.creditbudget import CreditBudgetSpec
from arclight.clients.ledger import Ledger
from arclight.core.costs import BudgetUsage, Metering
from arclight.framework.context import OperatorContext
from arclight.framework.notifier import CLAIM_LIMIT, LEASE, Notifier
from arclight.framework.settings import Settings
from arclight.metering import notifications
from prometheus_client import REGISTRY

pytestmark = pytest.mark.ledger

T0 = datetime(2026, 12, 10, 12, 0, tzinfo=UTC)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)
JANUARY = datetime(2027, 1, 1, tzinfo=UTC)
KEY = "whsec-test-key"
TOKEN = "tok-5ecret"
FAILURES = 2  # the receiver answers 500 to the first two attempts of each notification


@dataclass
class Receiver:
    """An HTTP server that answers 500 to the first FAILURES POSTs of each id, then 200."""

    server: ThreadingHTTPServer
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: threading.Event = field(default_factory=threading.Event)  # set: answer slowly

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def accepted(self) -> Counter[tuple[str, int]]:
        return Counter((r["path"], r["body"]["threshold"]) for r in self.requests
                       if r["status"] == 200)

    def attempts(self) -> Counter[str]:
        return Counter(r["body"]["id"] for r in self.requests)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            signed = self.headers.get(notifications.SIGNATURE_HEADER)
            verified = None
            if signed is not None:
                parts = dict(p.split("=", 1) for p in signed.split(","))
                mac = hmac.new(KEY.encode(), parts["t"].encode() + b"." + raw, hashlib.sha256)
                verified = hmac.compare_digest(mac.hexdigest(), parts["v1"])
            body = json.loads(raw)
            if receiver.delay.is_set():
                threading.Event().wait(0.2)  # both replicas are sending at once
            with receiver.lock:
                earlier = sum(r["body"]["id"] == body["id"] for r in receiver.requests)
                status = 500 if earlier < FAILURES else 200
                receiver.requests.append({
                    "path": self.path, "body": body, "status": status, "verified": verified,
                    "timestamp": int(parts["t"]) if signed else None,
                    "agent": self.headers["User-Agent"], "type": self.headers["Content-Type"]})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    # 16 POSTs at once (two replicas of 8 workers): socketserver's default backlog of 5 would
    # refuse some connections on a busy machine, and the receiver would miss attempts
    request_queue_size = 64


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = _Server(("127.0.0.1", 0), BaseHTTPRequestHandler)
    found = Receiver(server)
    server.RequestHandlerClass = _handler(found)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


def secrets_of(receiver: Receiver) -> dict[tuple[str, str], str]:
    """The Secret keys of the operator's namespace the budgets name."""
    return {("hooks", "signing"): f"{KEY}\n", ("hooks", "url"): f"{receiver.url}/exhausted\n"}


def make_notifier(dsn: str, secrets: dict[tuple[str, str], str]) -> Notifier:
    """A replica's notifier: its own Ledger, Secrets read from ``secrets``."""
    ctx = OperatorContext(settings=Settings(namespace="arclight-system"), kube=None, kinds={})
    return Notifier(ctx, Ledger(dsn),
                    read_secret=lambda ref: secrets.get((ref.name, ref.key)))


def spec(receiver: Receiver, **extra: Any) -> CreditBudgetSpec:
    """Warnings to a signed URL with a token, exhaustion also to a URL held in a Secret."""
    return CreditBudgetSpec.model_validate({"credits": 1000, "notify": [
        {"url": f"{receiver.url}/warn?token={TOKEN}",
         "signingSecretRef": {"name": "hooks", "key": "signing"}},
        {"secretRef": {"name": "hooks", "key": "url"}, "events": ["BudgetExhausted"]},
    ], **extra})


def snapshot(used: dict[str, int], now: datetime) -> Metering:
    """Each budget (1000 credits) with ``used`` credits this period."""
    return Metering(enabled=True, measured_at=now, budgets={
        name: BudgetUsage(DECEMBER, JANUARY, 1000, {"ns-a": Decimal(credits) * 3600})
        for name, credits in used.items()})


def schedule(start: datetime, attempts: int) -> list[datetime]:
    """When attempts 1..n of a row first due at ``start`` are made, failing each time."""
    times = [start]
    for n in range(1, attempts):
        following = notifications.retry_at(n, times[-1])
        assert following is not None
        times.append(following)
    return times


def counted(result: str) -> float:
    return REGISTRY.get_sample_value("arclight_budget_notifications_total",
                                     {"result": result}) or 0.0


def test_each_threshold_is_delivered_once_signed_after_retries(
        ledger_dsn: str, receiver: Receiver) -> None:
    notifier = make_notifier(ledger_dsn, secrets_of(receiver))
    notifier.ledger.migrate()
    budgets = {"team-a": spec(receiver)}
    before = {r: counted(r) for r in ("delivered", "failed", "gave_up")}
    # 80 %: the 75 % warning is owed to the first target only; 2 failures, then delivered.
    for now in [T0, T0 + timedelta(seconds=5), *schedule(T0, 3)[1:], T0 + timedelta(hours=1)]:
        notifier.round(budgets, snapshot({"team-a": 800}, now), now)
    assert receiver.accepted() == {("/warn?token=" + TOKEN, 75): 1}
    assert [r["status"] for r in receiver.requests] == [500, 500, 200]
    assert [r["timestamp"] for r in receiver.requests] == [
        int(t.timestamp()) for t in schedule(T0, 3)]
    # 100 %: 90 % to the first target, 100 % to both (the second's URL from its Secret).
    later = T0 + timedelta(hours=2)
    for now in [*schedule(later, 3), later + timedelta(days=1)]:
        notifier.round(budgets, snapshot({"team-a": 1000}, now), now)
    assert receiver.accepted() == {("/warn?token=" + TOKEN, 75): 1,
                                   ("/warn?token=" + TOKEN, 90): 1,
                                   ("/warn?token=" + TOKEN, 100): 1, ("/exhausted", 100): 1}
    assert all(n == FAILURES + 1 for n in receiver.attempts().values())
    for request in receiver.requests:
        assert (request["agent"], request["type"]) == ("arclight", "application/json")
        assert request["verified"] is (True if request["path"] != "/exhausted" else None)
    exhausted = next(r["body"] for r in receiver.requests if r["path"] == "/exhausted")
    assert {k: exhausted[k] for k in ("event", "budget", "threshold", "used", "granted",
                                      "remaining", "percentUsed", "periodStart")} == {
        "event": "BudgetExhausted", "budget": "team-a", "threshold": 100, "used": 1000,
        "granted": 1000, "remaining": 0, "percentUsed": 100,
        "periodStart": "2026-12-01T00:00:00Z"}
    assert notifier.ledger.undelivered_notifications("team-a") == []
    with psycopg.connect(ledger_dsn) as conn:
        rows = conn.execute("SELECT threshold, event, attempts, last_error FROM"
                            " budget_notifications WHERE delivered_at IS NOT NULL").fetchall()
    assert sorted(rows) == [(75, "BudgetWarning", 3, ""), (90, "BudgetWarning", 3, ""),
                            (100, "BudgetExhausted", 3, ""), (100, "BudgetExhausted", 3, "")]
    assert {r: counted(r) - before[r] for r in before} == {
        "delivered": 4, "failed": 8, "gave_up": 0}
    notifier.ledger.close()


def test_two_replicas_never_send_one_notification_twice(ledger_dsn: str,
                                                        receiver: Receiver) -> None:
    secrets = secrets_of(receiver)
    replicas = [make_notifier(ledger_dsn, secrets) for _ in range(2)]
    replicas[0].ledger.migrate()
    # 4 rows each, 64 in all: twice what one replica claims in a round, so both send in
    # every round, at once (the receiver answers slowly).
    budgets = {f"team-{i}": spec(receiver) for i in range(16)}
    figures = {name: 1000 for name in budgets}
    assert len(budgets) * 4 == 2 * CLAIM_LIMIT
    receiver.delay.set()
    for now in schedule(T0, FAILURES + 1):
        start = threading.Barrier(2)

        def run(notifier: Notifier, now: datetime = now, start: threading.Barrier = start
                ) -> None:
            start.wait()
            notifier.round(budgets, snapshot(figures, now), now)

        threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    attempts = receiver.attempts()
    assert len(attempts) == 64 and set(attempts.values()) == {FAILURES + 1}
    assert sum(receiver.accepted().values()) == 64
    assert all(not replicas[0].ledger.undelivered_notifications(b) for b in budgets)
    for r in replicas:
        r.ledger.close()


def test_a_restart_resumes_what_is_pending(ledger_dsn: str, receiver: Receiver) -> None:
    secrets = secrets_of(receiver)
    budgets = {"team-a": spec(receiver)}
    first = make_notifier(ledger_dsn, secrets)
    first.ledger.migrate()
    times = schedule(T0, 3)
    first.round(budgets, snapshot({"team-a": 800}, T0), T0)  # attempt 1 fails
    # A replica claims the next attempt and dies before it POSTs or marks anything.
    assert len(first.ledger.claim_due(times[1], 32, LEASE)) == 1
    first.ledger.close()

    second = make_notifier(ledger_dsn, secrets)  # the restarted operator
    second.round(budgets, snapshot({"team-a": 800}, times[1]), times[1])
    assert len(receiver.requests) == 1  # still leased by the dead replica
    (pending,) = second.ledger.undelivered_notifications("team-a", DECEMBER)
    assert (pending.threshold, pending.attempts, pending.last_error) == (75, 2, "HTTP 500")
    expired = times[1] + LEASE
    for now in (expired, notifications.retry_at(3, expired)):
        assert now is not None
        second.round(budgets, snapshot({"team-a": 800}, now), now)
    assert [r["status"] for r in receiver.requests] == [500, 500, 200]
    assert second.ledger.undelivered_notifications("team-a") == []
    second.ledger.close()


def test_an_unreachable_receiver_is_given_up_without_leaking_its_url(ledger_dsn: str) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://user:pw-{TOKEN}@127.0.0.1:{port}/hooks/{TOKEN}?token={TOKEN}"
    notifier = make_notifier(ledger_dsn, {})
    notifier.ledger.migrate()
    budgets = {"team-a": CreditBudgetSpec.model_validate(
        {"credits": 1000, "alerts": [50], "notify": [{"url": url}]})}
    times = schedule(T0, notifications.MAX_ATTEMPTS)
    for now in [*times, times[-1] + timedelta(days=2)]:
        notifier.round(budgets, snapshot({"team-a": 600}, now), now)
    (gone,) = notifier.ledger.undelivered_notifications("team-a")
    assert (gone.attempts, gone.next_attempt_at) == (notifications.MAX_ATTEMPTS, None)
    assert gone.last_error.startswith("cannot connect") and TOKEN not in gone.last_error
    assert times[-1] - T0 < timedelta(hours=24)
    notifier.ledger.close()


def test_missing_secrets_are_retried_and_removed_targets_given_up(
        ledger_dsn: str, receiver: Receiver) -> None:
    secrets: dict[tuple[str, str], str] = {}
    notifier = make_notifier(ledger_dsn, secrets)
    notifier.ledger.migrate()
    budgets = {"team-a": spec(receiver)}
    notifier.round(budgets, snapshot({"team-a": 1000}, T0), T0)
    errors = {(p.threshold, p.event, p.last_error)
              for p in notifier.ledger.undelivered_notifications("team-a")}
    signing = "Secret arclight-system/hooks key signing is missing or empty"
    url = "Secret arclight-system/hooks key url is missing or empty"
    assert errors == {(75, "BudgetWarning", signing), (90, "BudgetWarning", signing),
                      (100, "BudgetExhausted", signing), (100, "BudgetExhausted", url)}
    assert receiver.requests == []
    secrets.update(secrets_of(receiver))
    budgets = {"team-a": spec(receiver, notify=spec(receiver).model_dump(
        by_alias=True, exclude_none=True)["notify"][:1])}  # the Secret URL target removed
    later = T0 + timedelta(seconds=10)
    notifier.round(budgets, snapshot({"team-a": 1000}, later), later)
    pending = notifier.ledger.undelivered_notifications("team-a")
    assert {(p.threshold, p.next_attempt_at is None, p.last_error) for p in pending} == {
        (75, False, "HTTP 500"), (90, False, "HTTP 500"), (100, False, "HTTP 500"),
        (100, True, "the target is no longer in spec.notify")}
    notifier.ledger.close()


def test_an_unreachable_ledger_waits_for_the_next_round() -> None:
    notifier = make_notifier("postgresql://arclight@127.0.0.1:1/ledger", {})
    budgets = {"team-a": CreditBudgetSpec.model_validate(
        {"credits": 10, "notify": [{"url": "http://127.0.0.1:1/x"}]})}
    notifier.round(budgets, snapshot({"team-a": 10}, T0), T0)  # logged, not raised
