"""CreditBudget webhooks, the pure part: what a standing owes, the body, the signature and the
retry schedule (arclight.metering.notifications)."""
from __future__ import annotations

import datetime
import json
from decimal import Decimal
from typing import Any

import pytest
from arclight.api.creditbudget import CreditBudgetSpec
from arclight.budgets.validation import validate_creditbudget
from arclight.core.costs import BudgetUsage
from arclight.framework.settings import from_env
from arclight.metering import notifications as n

pytestmark = pytest.mark.unit
UTC = datetime.UTC
DECEMBER = datetime.datetime(2026, 12, 1, tzinfo=UTC)
JANUARY = datetime.datetime(2027, 1, 1, tzinfo=UTC)
WARN = {"url": "https://hooks.example/warn?token=t", "events": ["BudgetWarning"]}
BOTH = {"secretRef": {"name": "hooks", "key": "url"}}


def spec(*notify: dict[str, Any], **extra: Any) -> CreditBudgetSpec:
    return CreditBudgetSpec.model_validate({"credits": 1000, "notify": list(notify), **extra})


def usage(used: int | str, granted: int = 1000, start: datetime.datetime = DECEMBER
          ) -> BudgetUsage:
    return BudgetUsage(start, JANUARY, granted, {"ns-a": Decimal(used) * 3600},
                       enforcement="hold")


def owed(budget: CreditBudgetSpec, figures: BudgetUsage) -> list[tuple[int, str, str]]:
    return [(x.threshold, x.event, x.target) for x in n.owed("team-a", budget, figures)]


def test_each_crossed_threshold_is_owed_to_the_targets_subscribed() -> None:
    budget = spec(WARN, BOTH)
    warn, both = (n.target_key(t) for t in budget.notify)
    assert owed(budget, usage(749)) == []
    assert owed(budget, usage(750)) == [(75, "BudgetWarning", warn), (75, "BudgetWarning", both)]
    assert owed(budget, usage(1200)) == [
        (75, "BudgetWarning", warn), (75, "BudgetWarning", both),
        (90, "BudgetWarning", warn), (90, "BudgetWarning", both),
        (100, "BudgetExhausted", both)]
    assert owed(spec(), usage(1200)) == []  # no notify: nothing owed
    assert owed(spec(BOTH, alerts=[50, 50]), usage(500)) == [(50, "BudgetWarning", both)]
    # A budget of zero credits is spent from the start (as its Exhausted condition says).
    assert [t for t, _, _ in owed(spec(BOTH), usage(0, granted=0))] == [75, 90, 100]


def test_the_target_key_is_where_the_webhook_goes() -> None:
    plain = n.target_key(spec(WARN).notify[0])
    assert plain == n.target_key(spec({**WARN, "events": ["BudgetExhausted"],
                                       "signingSecretRef": {"name": "s", "key": "k"}}).notify[0])
    assert plain != n.target_key(spec({**WARN, "url": "https://hooks.example/other"}).notify[0])
    assert n.target_key(spec(BOTH).notify[0]) != n.target_key(
        spec({"secretRef": {"name": "hooks", "key": "other"}}).notify[0])
    assert "token" not in plain and len(plain) == 32


def test_payload_figures_and_a_stable_id() -> None:
    figures = usage("1234.4")
    body = n.payload("team-a", figures, 100, "k1")
    assert body == {
        "id": body["id"], "event": "BudgetExhausted", "budget": "team-a", "threshold": 100,
        "periodStart": "2026-12-01T00:00:00Z", "periodEnd": "2027-01-01T00:00:00Z",
        "used": 1234, "granted": 1000, "remaining": -234, "percentUsed": 123,
        "enforcement": "hold",
        "message": "CreditBudget team-a: 1234 of 1000 credits used (123%): past the 100% alert.",
    }
    assert body["id"] == n.payload("team-a", usage(1500), 100, "k1")["id"]  # every attempt
    others = {n.payload("team-a", figures, 90, "k1")["id"],
              n.payload("team-a", figures, 100, "k2")["id"],
              n.payload("team-b", figures, 100, "k1")["id"],
              n.payload("team-a", usage(1, start=JANUARY - datetime.timedelta(days=1)), 100,
                        "k1")["id"]}
    assert len(others) == 4 and body["id"] not in others
    open_ended = BudgetUsage(DECEMBER, None, 10, {})
    assert n.payload("team-a", open_ended, 75, "k")["periodEnd"] is None


def test_body_and_signature() -> None:
    data = n.body({"b": 1, "a": [1, 2]})
    assert data == b'{"a":[1,2],"b":1}' and json.loads(data) == {"a": [1, 2], "b": 1}
    # printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec-test
    assert n.signature("whsec-test", 1700000000, b'{"a":1}') == (
        "t=1700000000,v1=fed7a1a6c799a6367d73724d76bc70c16678908a32a879cd1ded6565ac05cece")


def test_retry_schedule_backs_off_and_gives_up_within_a_day() -> None:
    now = datetime.datetime(2026, 12, 10, tzinfo=UTC)
    delays = []
    for attempts in range(1, n.MAX_ATTEMPTS):
        at = n.retry_at(attempts, now)
        assert at is not None
        delays.append((at - now).total_seconds())
    assert delays[:8] == [10, 30, 60, 120, 300, 600, 1800, 3600]
    assert set(delays[8:]) == {3600} and delays == sorted(delays)
    assert n.retry_at(n.MAX_ATTEMPTS, now) is None
    assert 20 * 3600 < sum(delays) < 24 * 3600


def test_notify_is_accepted() -> None:
    budget = {"metadata": {"name": "team-a"}, "spec": {"credits": 10, "notify": [WARN, BOTH]}}
    assert len(validate_creditbudget(budget).notify) == 2


def test_the_operator_namespace_setting() -> None:
    assert from_env({}).namespace == "arclight-system"
    assert from_env({"ARCLIGHT_NAMESPACE": "ops"}).namespace == "ops"
