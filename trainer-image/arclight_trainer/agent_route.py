"""`POST /v1/agent/run`: answer as the trained agent, with its template's prompt and tools.

The model directory's `arclight-agent.json` names the template and reward the model was
trained with. A run is one template episode in-process (every chat turn goes through the
server's micro-batcher), scored with the trained reward when the input holds every column
that reward needs:

    {"input": {"question": "What is 7 + 5?", "answer": 12}, "temperature": 0, "maxTokens": 64}
"""

from __future__ import annotations

import asyncio
import json
from functools import cache

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from .policy_server import PolicyUnhealthy
from .templates import get_template
from .templates.base import Chat, Column, DatasetError, Template
from .templates.fields import check_columns

PATH = "/v1/agent/run"


class AgentRunRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    model: str | None = None
    input: dict
    temperature: float = Field(0.0, ge=0)
    max_tokens: int | None = Field(None, alias="maxTokens", ge=1)


class _Reads(dict):
    """A dict that records the keys read from it."""

    def __init__(self, data: dict) -> None:
        super().__init__(data)
        self.read: set = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:
        self.read.add(key)
        return super().__contains__(key)


@cache
def prompt_columns(name: str) -> tuple[Column, ...]:
    """The columns template `name` needs to run: those its prompt reads of a sample item."""
    template = get_template(name)
    try:
        with template.sample_dataset().open(encoding="utf-8") as lines:
            sample = _Reads(json.loads(next(lines)))
        template.prompt(sample)
    except (OSError, StopIteration, ValueError):
        return tuple(c for c in template.columns if not c.optional)
    return tuple(c for c in template.columns if c.name in sample.read)


def _column_error(exc: DatasetError) -> str:
    return f"input column {exc.column!r}: {exc.message}" if exc.column else exc.message


class AgentRunner:
    """Runs the agent of a descriptor (`{"template", "reward"}`) with a chat function."""

    def __init__(self, descriptor: dict, chat: Chat, default_max_tokens: int) -> None:
        self.template: Template = get_template(descriptor["template"])
        self.components = list(descriptor.get("reward") or self.template.default_reward)
        self.chat, self.default_max_tokens = chat, default_max_tokens
        self.inputs = prompt_columns(self.template.name)

    def run(self, request: AgentRunRequest) -> dict:
        """One episode and its reward (blocking: call it off the event loop)."""
        item, name = request.input, self.template.name
        try:
            check_columns(self.inputs, item, 1)
        except DatasetError as exc:
            raise HTTPException(400, f"{_column_error(exc)} (the {name} agent's prompt "
                                     "needs it)") from None
        try:
            episode = self.template.run_episode(
                item, self.chat, max_tokens=request.max_tokens or self.default_max_tokens,
                temperature=request.temperature)
        except PolicyUnhealthy as exc:
            raise HTTPException(503, str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:  # a tool reading a bad input column
            raise HTTPException(400, f"the {name} agent cannot run on this input: "
                                     f"{type(exc).__name__}: {exc}") from None
        reward, reward_error = None, None
        try:
            self.template.validate_item(item, 1)
            result = self.template.score(item, episode, self.components)
            reward = {"total": result.total, "components": result.components,
                      "success": result.success}
        except DatasetError as exc:
            reward_error = f"{_column_error(exc)} (the reward needs it)"
        except Exception as exc:  # noqa: BLE001 - a reward failure must not fail the answer
            reward_error = f"{type(exc).__name__}: {exc}"
        return {"template": name, "answer": episode.answer, "toolCalls": episode.tool_calls,
                "turns": episode.turns, "messages": episode.messages,
                "latencySeconds": round(episode.latency_s, 3), "toolError": episode.error,
                "reward": reward, "rewardError": reward_error}


def add_agent_route(app: FastAPI, runner: AgentRunner | None) -> None:
    """Serve `POST /v1/agent/run` on `app`: 404 when the model has no agent descriptor."""

    @app.post(PATH)
    async def run_agent(request: AgentRunRequest) -> dict:
        if runner is None:
            raise HTTPException(404, "this model was not trained by Arclight with a template "
                                     "(no arclight-agent.json in its directory): use "
                                     "/v1/chat/completions")
        return await asyncio.to_thread(runner.run, request)
