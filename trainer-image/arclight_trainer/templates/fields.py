"""Reading and checking dataset columns: text, number, int, list and mapping cells.

Cells may come from JSON (native types) or CSV (strings, with JSON for lists and mappings),
so every accessor accepts both and every check says how to fix the column with pandas.
"""

from __future__ import annotations

import json
import math
from typing import Any

from .base import Column, DatasetError

FIXES = {
    "text": 'df = df.dropna(subset=["{c}"]); df["{c}"] = df["{c}"].astype(str)',
    "number": 'df["{c}"] = pd.to_numeric(df["{c}"], errors="coerce"); '
              'df = df.dropna(subset=["{c}"])',
    "int": 'df["{c}"] = pd.to_numeric(df["{c}"], errors="coerce").round().astype("Int64"); '
           'df = df.dropna(subset=["{c}"])',
    "list": 'store a JSON array in each cell, e.g. df["{c}"] = df["{c}"].apply(json.dumps) '
            'for Python lists',
    "mapping": 'store a JSON object in each cell, e.g. df["{c}"] = df["{c}"].apply(json.dumps) '
               'for Python dicts',
}


def text(item: dict, column: str) -> str:
    """A text cell as a stripped string ('' when absent)."""
    value = item.get(column)
    return "" if value is None else str(value).strip()


def number(item: dict, column: str) -> float:
    """A numeric cell as a float; ValueError when it is not a finite number."""
    value = item.get(column)
    if isinstance(value, bool):
        raise TypeError(f"{value!r} is a boolean, not a number")
    result = float(str(value).strip().replace(",", "")) if isinstance(value, str) else float(value)
    if not math.isfinite(result):
        raise ValueError(f"{value!r} is not a finite number")
    return result


def integer(item: dict, column: str) -> int:
    """An integer cell (3, 3.0 or "3"); ValueError otherwise."""
    result = number(item, column)
    if result != int(result):
        raise ValueError(f"{item.get(column)!r} is not a whole number")
    return int(result)


def as_list(item: dict, column: str) -> list:
    """A list cell: a list, or a JSON array in a string; ValueError otherwise."""
    return _decoded(item.get(column), list, "a JSON array")


def mapping(item: dict, column: str) -> dict:
    """A mapping cell: a dict, or a JSON object in a string; ValueError otherwise."""
    return _decoded(item.get(column), dict, "a JSON object")


def _decoded(value: Any, kind: type, what: str) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{value[:40]!r} is not {what} ({exc.msg})") from None
    if not isinstance(value, kind):
        raise TypeError(f"{type(value).__name__} value is not {what}")
    return value


READERS = {"text": text, "number": number, "int": integer, "list": as_list, "mapping": mapping}


def check_columns(columns: tuple[Column, ...], item: dict, row: int) -> None:
    """Raise DatasetError for the first missing or ill-typed column of `item`."""
    if not isinstance(item, dict):
        raise DatasetError(f"expected an object with columns, got {type(item).__name__}",
                           row=row, fix="make every row an object (a JSON object or a CSV line)")
    for col in columns:
        value = item.get(col.name)
        empty = value is None or (isinstance(value, str) and not value.strip()) or (
            isinstance(value, float) and math.isnan(value))
        if empty:
            if col.optional:
                continue
            raise DatasetError(f"missing required value ({col.kind}: {col.doc})", row=row,
                               column=col.name, fix=_missing_fix(col))
        try:
            READERS[col.kind](item, col.name)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"expected {col.kind}: {exc}", row=row, column=col.name,
                               fix=FIXES[col.kind].format(c=col.name)) from None


def _missing_fix(col: Column) -> str:
    return (f'add a "{col.name}" column ({col.doc}) or drop incomplete rows: '
            f'df = df.dropna(subset=["{col.name}"])')


def require(condition: bool, message: str, *, row: int, column: str, fix: str) -> None:
    """Raise DatasetError(message) naming row and column unless `condition` holds."""
    if not condition:
        raise DatasetError(message, row=row, column=column, fix=fix)
