"""Generate the bundled sample datasets deterministically: `python generate.py` (no arguments).

Every generator uses its own seeded random.Random, so re-running rewrites identical files.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent


def math_solver() -> list[dict]:
    """240 one-step additions/subtractions with small numbers, a few as word problems."""
    rng = random.Random(7)
    names = ["Ana", "Ben", "Cara", "Dev", "Eli", "Fay", "Gus", "Hana"]
    things = ["apples", "books", "coins", "pens", "cards", "shells"]
    items, seen = [], set()
    while len(items) < 240:
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        op = rng.choice("+-")
        if op == "-" and b > a:
            a, b = b, a
        answer = a + b if op == "+" else a - b
        if rng.random() < 0.8:
            question = f"What is {a} {op} {b}?"
        elif op == "+":
            who, what = rng.choice(names), rng.choice(things)
            question = f"{who} has {a} {what} and gets {b} more. How many {what} now?"
        else:
            who, what = rng.choice(names), rng.choice(things)
            question = f"{who} has {a} {what} and gives away {b}. How many {what} are left?"
        if question not in seen:
            seen.add(question)
            items.append({"question": question, "answer": answer})
    return items


GENERATORS = {
    "math-solver": math_solver,
}


def main() -> None:
    """Write one JSONL file per template next to this script."""
    for name, generate in GENERATORS.items():
        rows = generate()
        with open(HERE / f"{name}.jsonl", "w", encoding="utf-8") as out:
            for row in rows:
                out.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
        print(f"{name}: {len(rows)} items")


if __name__ == "__main__":
    main()
