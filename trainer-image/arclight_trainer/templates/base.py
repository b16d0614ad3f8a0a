"""The template interface: the agent protocol, episodes, rewards and the Template base class.

Stdlib only: this module is imported both by the torch trainer (Python 3.11) and by the
Agent Lightning rollout workers (Python 3.12), neither of which may need the other's deps.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

DATA_DIR = Path(__file__).parent / "data"


class Chat(Protocol):
    """The model behind an OpenAI-compatible endpoint: messages in, assistant text out."""

    def __call__(self, messages: list[dict], *, max_tokens: int, temperature: float) -> str: ...


@dataclass
class Episode:
    """One rollout of an agent on one dataset item."""

    messages: list[dict]
    answer: str
    tool_calls: list[dict]
    turns: int
    latency_s: float
    error: str | None = None


@dataclass
class RewardResult:
    """A scored episode: the weighted total, each component's value and task success."""

    total: float
    components: dict[str, float]
    success: bool


class RewardError(Exception):
    """A reward that cannot be computed (unknown component, bad weight or params)."""


class DatasetError(ValueError):
    """A dataset that cannot be used, naming the 1-based row, the column and a concrete fix."""

    def __init__(self, message: str, *, row: int | None = None, column: str | None = None,
                 fix: str = "") -> None:
        self.row, self.column, self.message, self.fix = row, column, message, fix
        where = ", ".join(p for p in (
            f"row {row}" if row is not None else "",
            f"column {column!r}" if column is not None else "") if p)
        text = f"{where}: {message}" if where else message
        super().__init__(f"{text}. Fix: {fix}" if fix else text)


class ToolError(Exception):
    """A tool call the agent got wrong; its message is shown to the model as the observation."""


@dataclass(frozen=True)
class Column:
    """A dataset column a template needs: its name, kind and a one-line meaning."""

    name: str
    kind: str  # text | number | int | list | mapping
    doc: str = ""
    optional: bool = False


class Template(ABC):
    """One ready-made agent: prompt, tools, answer parsing, task metric and sample data."""

    name: str = ""
    task_type: str = ""
    description: str = ""
    default_reward: ClassVar[list[dict]] = [
        {"name": "taskSuccess", "weight": "0.8", "params": {}},
        {"name": "format", "weight": "0.2", "params": {}},
    ]
    max_turns: int = 1
    system_prompt: str = ""
    columns: tuple[Column, ...] = ()
    tools: tuple[str, ...] = ()  # tool names the agent may call as `NAME: argument` lines
    multiline_answer: bool = False  # prose answers: the whole reply when no `Answer:` marker

    def sample_dataset(self) -> Path:
        """The bundled JSONL sample dataset of this template."""
        return DATA_DIR / f"{self.name}.jsonl"

    def validate_item(self, item: dict, row: int) -> None:
        """Raise DatasetError naming the row and column when `item` cannot be used."""
        from .fields import check_columns

        check_columns(self.columns, item, row)
        self.check_item(item, row)

    def check_item(self, item: dict, row: int) -> None:
        """Template-specific checks beyond column kinds (override when needed)."""

    @abstractmethod
    def prompt(self, item: dict) -> str:
        """The first user message: a pure function of the item."""

    def call_tool(self, item: dict, tool: str, argument: str) -> str:
        """Run one tool call; raise ToolError for a call the model got wrong."""
        raise ToolError(f"unknown tool {tool}")

    def run_episode(self, item: dict, chat: Chat, *, max_tokens: int,
                    temperature: float) -> Episode:
        """Run the agent on `item`: chat, execute tool lines, parse the final answer."""
        from .agent import run_tool_loop

        start = time.monotonic()
        messages, tool_calls, turns, error = run_tool_loop(
            self, item, chat, max_tokens=max_tokens, temperature=temperature)
        final = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
        answer = self.extract_answer(final)
        return Episode(messages=messages, answer=answer, tool_calls=tool_calls, turns=turns,
                       latency_s=time.monotonic() - start, error=error)

    def extract_answer(self, reply: str) -> str:
        """The final answer in a reply: after the last `Answer:` marker, forgivingly."""
        from .agent import parse_answer

        marked = parse_answer(reply, multiline=self.multiline_answer)
        if marked is not None:
            return marked
        return reply.strip() if self.multiline_answer else _last_line(reply)

    def format_ok(self, item: dict, episode: Episode) -> bool:
        """Whether the final reply has a well-formed `Answer:` the template can parse."""
        from .agent import parse_answer

        return parse_answer(final_reply(episode), multiline=self.multiline_answer) not in (
            None, "")

    @abstractmethod
    def task_metric(self, item: dict, episode: Episode) -> tuple[float, bool]:
        """The task's own metric in [0, 1] and whether the task was solved."""

    def score(self, item: dict, episode: Episode, components: list[dict]) -> RewardResult:
        """Weighted sum of the reward components for one episode."""
        from .rewards import score_episode

        return score_episode(self, item, episode, components)

    def forbidden_content(self, item: dict) -> list[str]:
        """Item-specific phrases the safety component penalises (override when needed)."""
        return []


def final_reply(episode: Episode) -> str:
    """The last assistant message of an episode (empty when there is none)."""
    for message in reversed(episode.messages):
        if message.get("role") == "assistant":
            return str(message.get("content") or "")
    return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""

