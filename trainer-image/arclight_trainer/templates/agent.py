"""The agent protocol: one chat turn at a time, `NAME: argument` tool lines, `Answer:` lines.

Small models are sloppy, so parsing is forgiving: markers are case-insensitive, may carry
markdown decoration (`**Answer:**`), and the last marker wins.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Chat, Template

ANSWER_RE = re.compile(r"^[\s*#>_`-]*(?:final\s+)?answer\s*[*_]*\s*[:=：]\s*[*_]*\s*(.*)$",
                       re.IGNORECASE | re.MULTILINE)
TOOL_RE = re.compile(r"^[\s*#>_`-]*([A-Za-z]+)\s*[*_]*\s*:\s*(.+?)\s*$", re.MULTILINE)
MAX_OBSERVATION_CHARS = 600


def parse_answer(reply: str, *, multiline: bool = False) -> str | None:
    """The text after the last `Answer:` marker (to the line end, or to the end if multiline)."""
    matches = list(ANSWER_RE.finditer(reply))
    if not matches:
        return None
    last = matches[-1]
    text = reply[last.start(1):] if multiline else last.group(1)
    return text.strip().strip("*_`").strip()


def find_tool_call(reply: str, tools: tuple[str, ...]) -> tuple[str, str] | None:
    """The first `NAME: argument` line naming one of `tools`, as (NAME, argument)."""
    wanted = {t.upper() for t in tools}
    for match in TOOL_RE.finditer(reply):
        name = match.group(1).upper()
        if name in wanted:
            return name, match.group(2).strip().strip("`")
    return None


def run_tool_loop(template: Template, item: dict, chat: Chat, *, max_tokens: int,
                  temperature: float) -> tuple[list[dict], list[dict], int, str | None]:
    """Chat until an `Answer:` line, a reply without a tool call, or `max_turns` turns.

    Returns (messages, tool_calls, turns, error) where error is the last tool error, if any.
    """
    from .base import ToolError

    messages = [{"role": "system", "content": template.system_prompt},
                {"role": "user", "content": template.prompt(item)}]
    tool_calls: list[dict] = []
    error: str | None = None
    turns = 0
    while turns < template.max_turns:
        turns += 1
        reply = chat(messages, max_tokens=max_tokens, temperature=temperature) or ""
        messages.append({"role": "assistant", "content": reply})
        call = None if parse_answer(reply) is not None else find_tool_call(reply, template.tools)
        if call is None or turns == template.max_turns:
            break
        tool, argument = call
        try:
            output = template.call_tool(item, tool, argument)
        except ToolError as exc:
            output = error = f"{tool} error: {exc}"
        output = output[:MAX_OBSERVATION_CHARS]
        tool_calls.append({"tool": tool, "input": argument, "output": output})
        messages.append({"role": "user", "content": f"{tool} result: {output}"})
    return messages, tool_calls, turns, error
