"""BM25 retrieval over a small passage corpus (pure Python, Okapi BM25)."""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

CORPUS = Path(__file__).parents[1] / "templates" / "data" / "corpus.jsonl"
TOKEN_RE = re.compile(r"[a-z0-9]+")
STOPWORDS = {"a", "an", "the", "of", "in", "on", "and", "or", "is", "was", "what", "which",
             "who", "when", "where", "how", "does", "did", "to", "for", "by", "its", "it"}


def tokens(text: str) -> list[str]:
    """Lowercase alphanumeric tokens without stopwords."""
    return [t for t in TOKEN_RE.findall(text.lower()) if t not in STOPWORDS]


class BM25:
    """Okapi BM25 over passages {"id", "text", ...}."""

    def __init__(self, passages: list[dict], k1: float = 1.5, b: float = 0.75) -> None:
        self.passages, self.k1, self.b = passages, k1, b
        self.docs = [Counter(tokens(f"{p.get('title', '')} {p['text']}")) for p in passages]
        self.lengths = [sum(d.values()) for d in self.docs]
        self.avg_length = sum(self.lengths) / max(1, len(self.docs))
        df = Counter(t for d in self.docs for t in d)
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def search(self, query: str, k: int = 3) -> list[dict]:
        """The `k` best passages for `query` (best first; none when nothing matches)."""
        terms = tokens(query)
        scored = []
        for index, (doc, length) in enumerate(zip(self.docs, self.lengths)):
            score = 0.0
            for term in terms:
                tf = doc.get(term, 0)
                if tf:
                    norm = tf + self.k1 * (1 - self.b + self.b * length / self.avg_length)
                    score += self.idf[term] * tf * (self.k1 + 1) / norm
            if score > 0:
                scored.append((-score, index))
        scored.sort()
        return [self.passages[index] for _, index in scored[:k]]


@lru_cache(maxsize=2)
def corpus_index(path: str = str(CORPUS)) -> BM25:
    """The BM25 index of a JSONL corpus (cached per process)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return BM25([json.loads(line) for line in lines if line.strip()])
