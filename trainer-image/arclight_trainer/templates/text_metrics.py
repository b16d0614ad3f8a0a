"""Text measures for rewards: normalisation, numbers, word counts, token F1, phrase checks."""

from __future__ import annotations

import re
import string
from collections import Counter

NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
ARTICLES = {"a", "an", "the"}


def normalize(text: str) -> str:
    """Lowercase, drop punctuation and articles, squeeze spaces (SQuAD style)."""
    text = text.lower().translate(str.maketrans({c: " " for c in string.punctuation}))
    return " ".join(w for w in text.split() if w not in ARTICLES)


def numbers(text: str) -> list[float]:
    """All numbers written in `text`, in order ("1,200" counts as 1200)."""
    return [float(m.group().replace(",", "")) for m in NUMBER_RE.finditer(text)]


def word_count(text: str) -> int:
    """Words in `text` (whitespace separated, punctuation-only tokens ignored)."""
    return sum(1 for w in text.split() if any(c.isalnum() for c in w))


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 between a prediction and one gold answer."""
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def best_f1(prediction: str, golds: list[str]) -> float:
    """The best token F1 of `prediction` against any gold answer."""
    return max((token_f1(prediction, str(g)) for g in golds), default=0.0)


def set_f1(predicted: set[str], gold: set[str]) -> float:
    """F1 overlap of two sets (e.g. cited vs gold passage ids)."""
    if not predicted or not gold:
        return float(predicted == gold)
    common = len(predicted & gold)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def contains_phrase(text: str, phrase: str) -> bool:
    """Whether `text` contains one of the `|`-separated alternatives of `phrase` as words."""
    haystack = f" {normalize(text)} "
    return any(f" {normalize(alt)} " in haystack for alt in phrase.split("|") if normalize(alt))
