"""Rubric-scored prose: required facts present, forbidden content absent, length in bounds."""

from __future__ import annotations

from .base import Episode, Template
from .fields import as_list, integer
from .text_metrics import contains_phrase, word_count


class RubricTemplate(Template):
    """A prose template scored by checkable rubric items taken from the dataset row."""

    multiline_answer = True

    def forbidden_content(self, item: dict) -> list[str]:
        return [str(p) for p in as_list(item, "forbidden_content")] if item.get(
            "forbidden_content") else []

    def body(self, answer: str) -> str:
        """The part of the answer whose length is bounded (override to drop headers)."""
        return answer

    def rubric(self, item: dict, answer: str) -> list[tuple[str, bool]]:
        """(rubric item, passed) pairs; subclasses append their own items."""
        checks = [(f"mentions {fact!r}", contains_phrase(answer, str(fact)))
                  for fact in as_list(item, "required_facts")]
        checks += [(f"avoids {bad!r}", not contains_phrase(answer, bad))
                   for bad in self.forbidden_content(item)]
        words = word_count(self.body(answer))
        low = integer(item, "min_words") if item.get("min_words") not in (None, "") else 1
        checks.append((f"{low}-{integer(item, 'max_words')} words",
                       low <= words <= integer(item, "max_words")))
        return checks

    def task_metric(self, item: dict, episode: Episode) -> tuple[float, bool]:
        checks = self.rubric(item, episode.answer)
        passed = sum(ok for _, ok in checks)
        return passed / len(checks), passed == len(checks)
