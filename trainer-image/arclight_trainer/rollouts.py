"""Enqueue rollouts on agl-server and collect their recorded triplets and rewards."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from .stopping import StopSignal

AGENT_CLASS = "arclight_trainer.agent_main:TemplateAgent"
POLL_INTERVAL_S = 0.05
COLLECTORS = 8
"""Rollouts whose events are fetched at once (the gateway answers them concurrently)."""


@dataclass
class Triplet:
    """One model call of a rollout: prompt ids, response ids, behaviour log-probs."""

    prompt_ids: list[int]
    response_ids: list[int]
    logprobs: list[float] | None


@dataclass
class RolloutResult:
    rollout_id: str
    data_id: str
    state: str
    reward: float | None = None
    success: bool = False
    components: dict[str, float] = field(default_factory=dict)
    answer: str | None = None
    triplets: list[Triplet] = field(default_factory=list)
    error: str | None = None
    reward_error: str | None = None


class Wakeups(Protocol):
    """How the client learns of the runners' progress without polling the store in a loop
    (`AglTopology` is one)."""

    def nudge(self) -> None:
        """Rollouts were just queued."""

    def wait(self) -> None:
        """Return when a rollout may have ended (or after a short poll interval)."""


class Polling:
    """No news channel: nothing to nudge, poll the store every POLL_INTERVAL_S."""

    def nudge(self) -> None:
        pass

    def wait(self) -> None:
        time.sleep(POLL_INTERVAL_S)


@dataclass
class Task:
    """One rollout to run: which dataset item, under which group id."""

    data_id: str
    item: dict


class RolloutClient:
    """Runs batches of template rollouts through the gateway and waits for them; the wait
    leaves with `Stopped` once `stop` is requested (the rollouts are left to the gateway)."""

    def __init__(self, api: httpx.Client, *, template: str, components: list[dict],
                 max_tokens: int, temperature: float, timeout_s: float,
                 agent_class: str = AGENT_CLASS, stop: StopSignal | None = None,
                 wakeups: Wakeups | None = None,
                 live: Callable[[int], None] | None = None) -> None:
        self.api, self.agent_class, self.stop = api, agent_class, stop or StopSignal()
        self.wakeups = wakeups or Polling()
        self.live = live or (lambda _: None)
        """Told how many of the batch's rollouts are still running (`PolicyServer.expect`)."""
        self.template, self.components = template, components
        self.max_tokens, self.temperature, self.timeout_s = max_tokens, temperature, timeout_s
        self._cursor = 0

    def run(self, tasks: list[Task], *, train: bool) -> list[RolloutResult]:
        """Enqueue `tasks` (train or validation mode) and return their results in order."""
        body = []
        for task in tasks:
            task_input = {"data_id": task.data_id, "template": self.template, "item": task.item,
                          "components": self.components, "maxTokens": self.max_tokens,
                          "temperature": self.temperature if train else 0.0}
            body.append({"rollout_id": f"{task.data_id}-{uuid.uuid4().hex[:12]}",
                         "input": task_input, "is_train": train,
                         "config": {"timeout_seconds": int(self.timeout_s),
                                    "local": {"agent_class": self.agent_class,
                                              "env_map": {"ARCLIGHT_TASK": "input"}}}})
        created = self.api.post("/api/rollouts", json=body)
        created.raise_for_status()
        self.wakeups.nudge()
        ids = [r["rollout_id"] for r in created.json()]
        try:
            self.live(len(ids))
            states = self._wait_terminal(set(ids))
        finally:
            self.live(0)
        with ThreadPoolExecutor(COLLECTORS) as pool:
            return list(pool.map(lambda pair: self._collect(pair[0], pair[1].data_id,
                                                            states[pair[0]]), zip(ids, tasks)))

    def _wait_terminal(self, pending: set[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        deadline = time.monotonic() + self.timeout_s + 30
        while pending:
            self.stop.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} rollouts did not finish in "
                                   f"{self.timeout_s + 30:.0f}s")
            page = self.api.get("/api/rollouts/terminal", params={"after": self._cursor})
            page.raise_for_status()
            data = page.json()
            self._cursor = data["next_after"]
            for item in data["items"]:
                if item["rollout_id"] in pending:
                    pending.discard(item["rollout_id"])
                    states[item["rollout_id"]] = item["state"]
            self.live(len(pending))
            if pending:
                self.wakeups.wait()
        return states

    def _collect(self, rollout_id: str, data_id: str, state: str) -> RolloutResult:
        result = RolloutResult(rollout_id=rollout_id, data_id=data_id, state=state)
        if state != "succeeded":
            detail = self.api.get(f"/api/rollouts/{rollout_id}").json()
            result.error = detail["rollout"]["status"].get("error_message")
        events = self.api.get(f"/api/rollouts/{rollout_id}/events")
        events.raise_for_status()
        for event in events.json():
            data = event["data"]
            if event["event_type"] == "reward":
                result.reward = float(data["value"])
                result.success = bool(data.get("success"))
                result.components = dict(data.get("components") or {})
            elif event["event_type"] == "episode":
                result.answer = data.get("answer")
            elif event["event_type"] == "arclight_error":
                result.reward_error = data.get("message")
        triplets = self.api.get(f"/api/rollouts/{rollout_id}/events",
                                params={"format": "triplet", "event_type": "model_request"})
        triplets.raise_for_status()
        for event in triplets.json():
            data = event["data"]
            if data.get("status", "ok") == "ok" and data["response_token_ids"]:
                result.triplets.append(Triplet(data["prompt_token_ids"],
                                               data["response_token_ids"],
                                               data.get("response_log_probs")))
        return result
