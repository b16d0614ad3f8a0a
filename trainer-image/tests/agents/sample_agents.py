"""Agents for the rollout-runner tests (imported by the runner under the agl interpreter)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx


def _task() -> dict:
    return json.loads(os.environ["ARCLIGHT_TASK"])


def _record(name: str) -> None:
    """Append this process's rollout to the journal the test reads (one line per run)."""
    with Path(_task()["item"]["journal"]).open("a") as journal:
        journal.write(f"{name} {os.getpid()} {os.environ['AGL_EVENT_URL']}\n")


class Rewarded:
    """Posts reward 1.0 (the episode's item names the journal file)."""

    def run(self) -> None:
        _record("rewarded")
        headers = {"Authorization": f"Bearer {os.environ['AGL_KEY']}"}
        httpx.post(os.environ["AGL_EVENT_URL"], headers=headers, json={
            "event_type": "reward", "data": {"value": 1.0, "success": True}}).raise_for_status()


class Crashes:
    def run(self) -> None:
        _record("crashes")
        raise RuntimeError("the agent crashed")


class Hangs:
    def run(self) -> None:
        _record("hangs")
        time.sleep(600)
