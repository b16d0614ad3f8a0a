"""When the workers may run passes: every informer has listed, and peering has not paused
this replica.

kopf's peering pauses its own watch streams when a live peer has a higher priority (or the
same one), but the frame's informers are its own: they keep the child stores current while
paused, and this gate holds the workers back. The rule is kopf's (``process_peering_event``):
each peering object's status maps a peer's identity to its priority, last keep-alive and
lifetime; this replica is paused while any such object shows a live peer with a higher
priority, or a second one with its own priority. Standalone, only the listing is waited for.
"""
from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

log = logging.getLogger(__name__)
CHECK_SECONDS = 2.0


def paused_by(status: Mapping[str, Any], priority: int, now: datetime.datetime) -> bool:
    """Whether one peering object's ``status`` pauses the replica of ``priority``."""
    same = 0
    for info in status.values():
        if not isinstance(info, Mapping):
            continue
        try:
            seen = datetime.datetime.fromisoformat(str(info["lastseen"]))
            alive = seen + datetime.timedelta(seconds=float(info.get("lifetime", 60))) > now
            peer = int(info.get("priority", 0))
        except (KeyError, TypeError, ValueError):
            continue
        if not alive:
            continue
        if peer > priority:
            return True
        same += peer == priority
    return same > 1  # another replica with our priority: kopf pauses both


class Gate:
    """Open while the workers may act; ``wait`` blocks a worker until it is."""

    def __init__(self, synced: Iterable[threading.Event],
                 peerings: Callable[[], Sequence[Mapping[str, Any]]] | None = None,
                 priority: int = 0) -> None:
        self._synced = list(synced)
        self._peerings, self._priority = peerings, priority
        self._open = threading.Event()
        self._paused = False

    def wait(self, timeout: float | None = None) -> bool:
        return self._open.wait(timeout)

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def check(self, now: datetime.datetime | None = None) -> bool:
        """Re-evaluate (listing done, peering); returns whether the gate is open now."""
        listed = all(event.is_set() for event in self._synced)
        paused = False
        if self._peerings is not None:
            now = now or datetime.datetime.now(datetime.UTC)
            objects = self._peerings()
            paused = not objects or any(
                paused_by(obj.get("status") or {}, self._priority, now) for obj in objects)
            if paused != self._paused:
                log.info("peering: %s", "paused: another replica acts" if paused else
                         "this replica acts")
                self._paused = paused
        if listed and not paused:
            self._open.set()
        else:
            self._open.clear()
        return self._open.is_set()

    def run(self, stopped: threading.Event) -> None:
        """Re-check every couple of seconds until ``stopped`` (a peer's lease runs out)."""
        while not stopped.is_set():
            self.check()
            stopped.wait(CHECK_SECONDS)

    def start(self, stopped: threading.Event) -> Gate:
        self.check()
        threading.Thread(target=self.run, args=(stopped,), name="arclight-gate",
                         daemon=True).start()
        return self
