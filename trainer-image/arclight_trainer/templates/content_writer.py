"""content-writer: a titled product description; rubric-scored (facts, banned claims, length)."""

from __future__ import annotations

import re

from .base import Column, Episode, final_reply
from .fields import integer, text
from .rubric import RubricTemplate

TITLE_RE = re.compile(r"^\s*[*#]*\s*title\s*[*]*\s*:\s*\S", re.IGNORECASE)


class ContentWriter(RubricTemplate):
    name = "content-writer"
    task_type = "writing"
    description = "Writes a short titled text to a brief with required facts and a word limit."
    max_turns = 1
    system_prompt = ("Write what the brief asks. First line: Title: <a title>. Then the text. "
                     "State only facts from the brief.")
    columns = (
        Column("brief", "text", "what to write"),
        Column("required_facts", "list", 'facts the text must state, "a|b" for alternatives'),
        Column("forbidden_content", "list", "claims the text must not make", optional=True),
        Column("min_words", "int", "the shortest acceptable body in words"),
        Column("max_words", "int", "the longest acceptable body in words"),
    )

    def prompt(self, item: dict) -> str:
        low, high = integer(item, "min_words"), integer(item, "max_words")
        return f"{text(item, 'brief')} Use {low} to {high} words."

    def body(self, answer: str) -> str:
        lines = answer.strip().splitlines()
        return "\n".join(lines[1:] if lines and TITLE_RE.match(lines[0]) else lines)

    def rubric(self, item: dict, answer: str) -> list[tuple[str, bool]]:
        return super().rubric(item, answer) + [("has a title line", bool(TITLE_RE.match(answer)))]

    def format_ok(self, item: dict, episode: Episode) -> bool:
        reply = self.extract_answer(final_reply(episode))
        return bool(TITLE_RE.match(reply)) and bool(self.body(reply).strip())


TEMPLATE = ContentWriter()
