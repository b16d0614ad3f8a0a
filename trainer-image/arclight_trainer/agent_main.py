"""The rollout agent that agl-controller runs as a subprocess (Python 3.12, .venv-agl).

agl-controller imports `arclight_trainer.agent_main:TemplateAgent` and calls `run()` with
AGL_OPENAI_BASE_URL, AGL_EVENT_URL and AGL_KEY set; the task comes as JSON in
ARCLIGHT_TASK (the rollout input). The agent plays one episode of its template through the
gateway, scores it and posts a `reward` event (plus an `episode` summary); a reward that
cannot be computed posts an `arclight_error` event and exits non-zero.
"""

from __future__ import annotations

import json
import os
import ssl

import certifi
import httpx

from arclight_trainer.templates import get_template
from arclight_trainer.templates.base import RewardError

TIMEOUT_S = 120.0
SSL_CONTEXT = ssl.create_default_context(cafile=certifi.where())
"""httpx's default trust, made once at import: the rollout runner imports this module before
it forks, so no rollout pays the ~50 ms of CPU that loading the CA bundle costs per client."""


class GatewayChat:
    """A template `Chat` over the gateway's OpenAI-compatible proxy."""

    def __init__(self, client: httpx.Client, base_url: str) -> None:
        self.client, self.url = client, base_url.rstrip("/") + "/chat/completions"

    def __call__(self, messages: list[dict], *, max_tokens: int, temperature: float) -> str:
        response = self.client.post(self.url, json={
            "model": "policy", "messages": messages, "max_tokens": max_tokens,
            "temperature": temperature})
        if response.status_code >= 400:
            raise RuntimeError(f"model call failed: HTTP {response.status_code}: "
                               f"{response.text[:300]}")
        return response.json()["choices"][0]["message"]["content"] or ""


class TemplateAgent:
    """One rollout: run the template's episode on the task's item and report its reward."""

    def run(self) -> None:
        task = json.loads(os.environ["ARCLIGHT_TASK"])
        key = os.environ.get("AGL_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        template = get_template(task["template"])
        with httpx.Client(headers=headers, timeout=TIMEOUT_S, verify=SSL_CONTEXT) as client:
            events_url = os.environ["AGL_EVENT_URL"]
            episode = template.run_episode(
                task["item"], GatewayChat(client, os.environ["AGL_OPENAI_BASE_URL"]),
                max_tokens=int(task["maxTokens"]), temperature=float(task["temperature"]))
            try:
                result = template.score(task["item"], episode, task["components"])
            except RewardError as exc:
                post(client, events_url, "arclight_error",
                     {"reason": "RewardError", "message": str(exc)})
                raise
            post(client, events_url, "episode", {
                "answer": episode.answer, "turns": episode.turns, "error": episode.error,
                "tool_calls": len(episode.tool_calls), "latency_s": episode.latency_s})
            post(client, events_url, "reward", {
                "value": result.total, "components": result.components,
                "success": result.success, "source": "agent"})


def post(client: httpx.Client, url: str, event_type: str, data: dict) -> None:
    """Append one event to this rollout attempt."""
    client.post(url, json={"event_type": event_type, "data": data}).raise_for_status()
