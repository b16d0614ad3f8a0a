"""Answers with passage citations ("Answer: 1642 [p007]"): parsing and the cited-answer metric."""

from __future__ import annotations

import re

from .fields import as_list
from .text_metrics import best_f1, set_f1

CITATION_RE = re.compile(r"\[\s*([A-Za-z]?\d+)\s*\]")
ANSWER_WEIGHT = 0.7
SOLVED_F1 = 0.8


def citations(answer: str) -> set[str]:
    """Passage ids cited as [p007] / [P2] in an answer, lowercased."""
    return {c.lower() for c in CITATION_RE.findall(answer)}


def strip_citations(answer: str) -> str:
    """The answer without its [id] citations."""
    return CITATION_RE.sub(" ", answer).strip()


def well_formed(answer: str | None) -> bool:
    """A non-empty answer that cites at least one passage."""
    return bool(answer) and bool(strip_citations(answer)) and bool(citations(answer))


def cited_answer_metric(item: dict, answer: str) -> tuple[float, bool]:
    """0.7 * answer token F1 + 0.3 * citation F1; solved when F1 >= 0.8 and a gold id is cited."""
    f1 = best_f1(strip_citations(answer), [str(a) for a in as_list(item, "answers")])
    gold = {str(e).lower() for e in as_list(item, "evidence_ids")}
    cited = citations(answer)
    value = ANSWER_WEIGHT * f1 + (1 - ANSWER_WEIGHT) * set_f1(cited, gold)
    return value, f1 >= SOLVED_F1 and bool(cited & gold)
