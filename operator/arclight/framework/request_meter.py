"""Counting the requests ModelDeployments serve: each metering round reads every running
server's ``/v1/stats`` (8 at a time, 2 s each) and records the counts in the ledger."""
from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from arclight.clients import serving_stats
from arclight.clients.ledger import Ledger, RequestCount
from arclight.metering.requests import ServingTarget, serving_target

WORKERS = 8
#: Reads a server's count: (pod IP, port) -> requests, None when it cannot be read now.
Reader = Callable[[str, int], int | None]


class RequestMeter:
    """Reads the servers' counts and writes them to the ledger (once per round)."""

    def __init__(self, ledger: Ledger, read: Reader = serving_stats.requests_served) -> None:
        self.ledger, self.read = ledger, read

    def round(self, pods: Iterable[Mapping[str, Any]], now: datetime.datetime) -> int:
        """Count the running servers among ``pods``; the number read."""
        targets = [t for t in map(serving_target, pods) if t is not None]
        if not targets:
            return 0
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(targets))) as pool:
            counts = list(pool.map(lambda t: self.read(t.ip, t.port), targets))
        rows = [_row(t, n, now) for t, n in zip(targets, counts) if n is not None]
        self.ledger.record_requests(rows)
        return len(rows)


def _row(target: ServingTarget, requests: int, now: datetime.datetime) -> RequestCount:
    return RequestCount(pod_uid=target.pod_uid, incarnation=target.incarnation,
                        owner_uid=target.owner_uid, namespace=target.namespace,
                        owner_name=target.owner_name, requests=requests, observed_at=now)
