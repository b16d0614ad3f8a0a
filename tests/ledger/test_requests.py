"""Requests served, counted into a real Postgres from real HTTP servers' /v1/stats: a
ModelDeployment's requests and cost per 1,000 requests."""
from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from arclight.clients.ledger import Ledger
from arclight.clients.serving_stats import requests_served
from arclight.core.costs import Metering, OwnerCost
from arclight.framework.request_meter import RequestMeter
from arclight.metering.standing import owner_cost

pytestmark = pytest.mark.ledger
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class Server:
    """A model server's stats endpoint answering ``count`` (None: HTTP 503)."""

    def __init__(self) -> None:
        self.count: int | None = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/v1/stats" or outer.count is None:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps({"inFlight": 0, "requests": outer.count}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.http.server_address[1]


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    found = [Server(), Server()]
    yield found
    for server in found:
        server.http.shutdown()
        server.http.server_close()


def serving_pod(uid: str, port: int, restarts: int = 0, owner: str = "md-uid") -> dict:
    return {"metadata": {"uid": uid, "name": uid, "namespace": "team-a", "labels": {
                "arclight.dev/owner-kind": "ModelDeployment", "arclight.dev/owner-name": "chat",
                "arclight.dev/owner-uid": owner}},
            "spec": {"containers": [{"name": "server", "ports": [
                {"name": "http", "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": "127.0.0.1", "containerStatuses": [
                {"name": "server", "restartCount": restarts, "state": {"running": {}}}]}}


def test_requests_sum_over_replicas_and_restarts(ledger_dsn: str, servers: list[Server]
                                                 ) -> None:
    ledger = Ledger(ledger_dsn)
    ledger.migrate()
    meter = RequestMeter(ledger)
    a, b = servers
    pods = [serving_pod("pod-a", a.port), serving_pod("pod-b", b.port)]
    a.count, b.count = 40, 7
    assert meter.round(pods, T0) == 2
    a.count, b.count = 90, None  # b cannot be read this round: its last count stays
    assert meter.round(pods, T0 + timedelta(seconds=30)) == 1
    assert ledger.owner_requests({"md-uid"}) == {"md-uid": 97}
    # a's container restarted (a new incarnation counts from zero); a stale lower read of
    # the old incarnation never lowers what was recorded
    a.count = 5
    meter.round([serving_pod("pod-a", a.port, restarts=1)], T0 + timedelta(seconds=60))
    a.count = 3
    meter.round([serving_pod("pod-a", a.port, restarts=0)], T0 + timedelta(seconds=90))
    assert ledger.owner_requests({"md-uid", "other"}) == {"md-uid": 102}
    # not a running server: nothing is read
    stopped = serving_pod("pod-c", a.port)
    stopped["status"]["phase"] = "Succeeded"
    trainer = serving_pod("pod-d", a.port)
    trainer["metadata"]["labels"]["arclight.dev/owner-kind"] = "TrainingRun"
    assert meter.round([stopped, trainer], T0) == 0
    ledger.close()

    # 3.06 credits for 102 requests: 30.00 credits per 1,000 requests
    metering = Metering(enabled=True, owners={"md-uid": OwnerCost(
        Decimal("3.06") * 3600, 0, 102)})
    assert owner_cost(metering, "md-uid") == {"gpuSeconds": 0, "credits": 3, "requests": 102,
                                              "creditsPer1000Requests": "30.00"}


def test_an_unreachable_server_reads_as_nothing(servers: list[Server]) -> None:
    assert requests_served("127.0.0.1", servers[0].port) == 0
    servers[0].count = None
    assert requests_served("127.0.0.1", servers[0].port) is None
    port = servers[1].port
    servers[1].http.shutdown()
    servers[1].http.server_close()
    assert requests_served("127.0.0.1", port) is None
