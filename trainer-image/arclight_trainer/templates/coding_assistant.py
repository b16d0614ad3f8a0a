"""coding-assistant: writes a small Python function; scored on hidden tests in a sandbox."""

from __future__ import annotations

import re

from ..tools.sandbox import SandboxError, check_source, run_tests
from .base import Column, DatasetError, Episode, Template, final_reply
from .fields import as_list, text

FENCE_RE = re.compile(r"```(?:python|py)?\s*\n?(.*?)(?:```|$)", re.IGNORECASE | re.DOTALL)
DEF_RE = re.compile(r"^def\s", re.MULTILINE)


class CodingAssistant(Template):
    name = "coding-assistant"
    task_type = "code"
    description = "Writes a small Python function, checked against hidden test cases."
    max_turns = 1
    multiline_answer = True
    system_prompt = "Write only the Python function that is asked for, in a ```python block."
    columns = (Column("task", "text", "what the function must do"),
               Column("entry_point", "text", "the function's name"),
               Column("tests", "list", 'cases like {"args": [1, 2], "expected": 3}'))

    def check_item(self, item: dict, row: int) -> None:
        fix = 'make "tests" a JSON array of {"args": [...], "expected": ...} objects'
        tests = as_list(item, "tests")
        if not tests or not all(isinstance(t, dict) and isinstance(t.get("args"), list)
                                and "expected" in t for t in tests):
            raise DatasetError("each test needs an args list and an expected value", row=row,
                               column="tests", fix=fix)
        if not text(item, "entry_point").isidentifier():
            raise DatasetError("not a Python function name", row=row, column="entry_point",
                               fix='use a plain identifier such as "add_two"')

    def prompt(self, item: dict) -> str:
        return text(item, "task")

    def extract_answer(self, reply: str) -> str:
        fenced = FENCE_RE.search(reply)
        if fenced:
            return fenced.group(1).strip()
        start = DEF_RE.search(reply)
        return reply[start.start():].strip() if start else super().extract_answer(reply)

    def format_ok(self, item: dict, episode: Episode) -> bool:
        try:
            check_source(self.extract_answer(final_reply(episode)), text(item, "entry_point"))
        except SandboxError:
            return False
        return True

    def task_metric(self, item: dict, episode: Episode) -> tuple[float, bool]:
        tests = as_list(item, "tests")
        try:
            passed = run_tests(episode.answer, text(item, "entry_point"), tests)
        except SandboxError:
            return 0.0, False
        return sum(passed) / len(tests), all(passed)


TEMPLATE = CodingAssistant()
