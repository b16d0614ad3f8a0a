"""The work queue: one pending pass per object, however many events arrive.

Semantics of client-go's workqueue: a key added while it is already waiting is not added
twice (a burst of child events coalesces into one pass); a key added while a worker holds it
is marked dirty and runs again after ``done``, never on two workers at once; ``add_after``
schedules a requeue; ``backoff`` gives failing keys exponentially growing delays.
"""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
#: The trigger that wins when passes coalesce: the first pass after a start (it re-applies).
STICKY = "resync"


class WorkQueue(Generic[Key]):
    """A thread-safe, coalescing, delaying queue of object keys."""

    def __init__(self, base_delay: float = 0.5, max_delay: float = 60.0) -> None:
        self._cond = threading.Condition()
        self._queue: deque[Key] = deque()
        self._waiting: dict[Key, str] = {}
        self._processing: set[Key] = set()
        self._dirty: dict[Key, str] = {}
        self._timers: list[tuple[float, int, Key, str]] = []
        self._counter = itertools.count()
        self._failures: dict[Key, int] = {}
        self._base, self._max = base_delay, max_delay
        self._closed = False

    def add(self, key: Key, trigger: str = "event") -> None:
        """Queue a pass for ``key`` now (coalesced with one already waiting; the first
        ``trigger`` is the one reported, except that ``resync`` always wins)."""
        with self._cond:
            self._add_locked(key, trigger)

    def _add_locked(self, key: Key, trigger: str) -> None:
        if key in self._processing:
            self._dirty.setdefault(key, trigger)
            if trigger == STICKY:
                self._dirty[key] = trigger
        elif key in self._waiting:
            if trigger == STICKY:
                self._waiting[key] = trigger
        else:
            self._waiting[key] = trigger
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: Key, delay: float, trigger: str = "requeue") -> None:
        """Queue a pass for ``key`` in ``delay`` seconds."""
        if delay <= 0:
            self.add(key, trigger)
            return
        with self._cond:
            heapq.heappush(self._timers,
                           (time.monotonic() + delay, next(self._counter), key, trigger))
            self._cond.notify()

    def backoff(self, key: Key) -> float:
        """Requeue a failed ``key`` after its next backoff delay; returns the delay."""
        with self._cond:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        delay = min(self._max, self._base * 2 ** failures)
        self.add_after(key, delay, "retry")
        return delay

    def forget(self, key: Key) -> None:
        """The last pass of ``key`` succeeded: reset its backoff."""
        with self._cond:
            self._failures.pop(key, None)

    def get(self, timeout: float | None = None) -> tuple[Key, str] | None:
        """The next key and its trigger (the caller must call ``done``); None when closed or
        on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._release_due_locked()
                if self._queue:
                    key = self._queue.popleft()
                    trigger = self._waiting.pop(key)
                    self._processing.add(key)
                    return key, trigger
                if self._closed:
                    return None
                wait = self._timers[0][0] - time.monotonic() if self._timers else None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return None
                    wait = left if wait is None else min(wait, left)
                self._cond.wait(wait)

    def _release_due_locked(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, key, trigger = heapq.heappop(self._timers)
            self._add_locked(key, trigger)

    def done(self, key: Key) -> None:
        """The worker finished ``key``; a key dirtied meanwhile is queued again."""
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._add_locked(key, self._dirty.pop(key))

    def close(self) -> None:
        """Wake every waiting worker; ``get`` returns None from now on."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + len(self._timers)
