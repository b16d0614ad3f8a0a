"""Read-only SQL over the bundled SQLite shop database, with a step budget and result comparison."""

from __future__ import annotations

import sqlite3
from collections import Counter
from functools import lru_cache
from pathlib import Path

SHOP_SQL = Path(__file__).parents[1] / "templates" / "data" / "shop.sql"
MAX_STEPS = 2_000_000  # sqlite VM instructions before a query is cancelled
READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}


class SQLError(ValueError):
    """A query that is not a single read-only statement, fails, or runs too long."""


@lru_cache(maxsize=4)
def _script(path: str) -> str:
    return Path(path).read_text(encoding="utf-8")


def connect(script: Path = SHOP_SQL) -> sqlite3.Connection:
    """A fresh in-memory copy of the database, locked to reading."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(_script(str(script)))
    conn.execute("PRAGMA query_only = ON")
    conn.set_authorizer(lambda action, *_: sqlite3.SQLITE_OK if action in READ_ACTIONS
                        else sqlite3.SQLITE_DENY)
    steps = {"left": MAX_STEPS // 1000}

    def budget() -> int:
        steps["left"] -= 1
        return int(steps["left"] < 0)

    conn.set_progress_handler(budget, 1000)
    return conn


def run_query(sql: str, *, script: Path = SHOP_SQL) -> tuple[list[str], list[tuple]]:
    """Run one SELECT; return (column names, rows). SQLError for anything else."""
    query = sql.strip().strip("`").strip()
    if query.lower().startswith("sql"):
        query = query[3:].strip()
    query = query.rstrip(";").strip()
    if not query:
        raise SQLError("empty query")
    if ";" in query:
        raise SQLError("only one statement is allowed")
    conn = connect(script)
    try:
        cursor = conn.execute(query)
        rows = cursor.fetchall()
        return [d[0] for d in cursor.description or ()], rows
    except sqlite3.Error as exc:
        message = "query took too long" if "interrupt" in str(exc) else str(exc)
        raise SQLError(message) from None
    finally:
        conn.close()


def same_results(predicted: list[tuple], gold: list[tuple], *, ordered: bool) -> bool:
    """Whether two result sets hold the same rows (as multisets, or in order if `ordered`)."""
    pred, ref = [_row(r) for r in predicted], [_row(r) for r in gold]
    return pred == ref if ordered else Counter(pred) == Counter(ref)


def format_rows(columns: list[str], rows: list[tuple], limit: int = 5) -> str:
    """A compact text table of the first `limit` rows for the model to read."""
    lines = [" | ".join(columns)] + [" | ".join(str(v) for v in r) for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"... {len(rows)} rows")
    return "\n".join(lines) if rows else "(no rows)"


def _row(row: tuple) -> tuple:
    return tuple(round(v, 6) if isinstance(v, float) else v for v in row)
