"""Load, validate and split training datasets from the URIs of the TrainingRun API.

URIs: sample://TEMPLATE, local paths and file://, http(s)://, s3:// and gs:// (through
fsspec with s3fs/gcsfs), pvc://CLAIM/PATH (mounted under $ARCLIGHT_PVC_ROOT, default /data),
configmap://NAME/KEY (mounted under $ARCLIGHT_CONFIGMAP_ROOT, default
/etc/arclight/datasets). Formats: csv, json (a list of objects), jsonl, parquet, or auto.
Stdlib only at import time; pyarrow, httpx and fsspec are imported when needed.
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import io
import json
import os
import random
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import urlparse

from .templates import NAMES, get_template
from .templates.base import DatasetError, Template

FORMATS = ("csv", "json", "jsonl", "parquet")
EXTENSIONS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".parquet": "parquet", ".pq": "parquet"}
GENERIC = "generic"
HTTP_TIMEOUT_S = 60.0
FS_PACKAGES = {"s3": "s3fs", "gs": "gcsfs"}
INT_RE = re.compile(r"^[-+]?\d+$")
FLOAT_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass
class Dataset:
    """Validated rows, the format they were read as, their task type and where they came from."""

    items: list[dict]
    format: str
    task_type: str
    source: str


def load_dataset(uri: str, fmt: str = "auto", *, credentials_dir: str | None = None,
                 template: Template | None = None) -> Dataset:
    """Read `uri` as `fmt`, validate every row (against `template` or the detected one)."""
    if fmt not in (*FORMATS, "auto"):
        raise DatasetError(f"unknown format {fmt!r}",
                           fix=f"use one of auto, {', '.join(FORMATS)}")
    if template is None and uri.startswith("sample://"):
        template = _template(uri.removeprefix("sample://"))
    data, name = read_bytes(uri, credentials_dir)
    if not data.strip():
        raise DatasetError(f"{uri} is empty", fix="point dataset.uri at a file with rows")
    fmt = detect_format(name, data) if fmt == "auto" else fmt
    items = PARSERS[fmt](data)
    if not items:
        raise DatasetError(f"{uri} has no rows", fix="point dataset.uri at a file with rows")
    task_type = template.task_type if template else detect_task_type(items)
    if template is None and task_type != GENERIC:
        template = template_for(task_type)
    if template is not None:
        _check_header(template, items)
        for row, item in enumerate(items, 1):
            template.validate_item(item, row)
    else:
        for row, item in enumerate(items, 1):
            if not isinstance(item, dict):
                raise DatasetError("expected an object with columns", row=row,
                                   fix="make every row a JSON object or a CSV line")
    return Dataset(items=items, format=fmt, task_type=task_type, source=uri)


def split(ds: Dataset, validation_fraction: float | str,
          seed: int) -> tuple[list[dict], list[dict]]:
    """Shuffle deterministically by `seed`; return (train, validation) rows."""
    try:
        fraction = float(Decimal(str(validation_fraction)))
    except InvalidOperation:
        raise ValueError(f"validationFraction {validation_fraction!r} is not a number") from None
    if not 0 <= fraction < 1:
        raise ValueError(f"validationFraction must be in [0, 1), got {validation_fraction}")
    order = list(range(len(ds.items)))
    random.Random(seed).shuffle(order)
    n_val = round(len(order) * fraction)
    if fraction > 0 and len(order) >= 2:
        n_val = min(max(1, n_val), len(order) - 1)
    return [ds.items[i] for i in order[n_val:]], [ds.items[i] for i in order[:n_val]]


def detect_task_type(items: list[dict]) -> str:
    """The task type of the template whose required columns the rows have (most specific wins);
    'generic' when no template fits."""
    rows = [i for i in items if isinstance(i, dict)]
    if not rows:
        return GENERIC
    present = set.intersection(*({k for k, v in r.items() if v is not None} for r in rows))
    best, best_size = GENERIC, 0
    for name in NAMES:
        template = get_template(name)
        required = {c.name for c in template.columns if not c.optional}
        if required <= present and len(required) > best_size:
            best, best_size = template.task_type, len(required)
    return best


def template_for(task_type: str) -> Template:
    """The template of a task type (as returned by detect_task_type)."""
    for name in NAMES:
        if get_template(name).task_type == task_type:
            return get_template(name)
    raise KeyError(f"no template has task type {task_type!r}")


def detect_format(name: str, data: bytes) -> str:
    """The format from the file extension, else from the content."""
    ext = EXTENSIONS.get(Path(name).suffix.lower())
    if ext:
        return ext
    if data[:4] == b"PAR1":
        return "parquet"
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        first = text.split(b"\n", 1)[0]
        try:
            json.loads(first)
        except json.JSONDecodeError:
            return "json"
        return "jsonl"
    return "csv"


# --- reading bytes from a URI ------------------------------------------------------------------

def read_bytes(uri: str, credentials_dir: str | None = None) -> tuple[bytes, str]:
    """The raw bytes behind `uri` and a file name (for the extension)."""
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower() if len(parsed.scheme) > 1 else ""  # C:\ is not a scheme
    if scheme == "sample":
        return _read_file(_template(parsed.netloc + parsed.path).sample_dataset(), uri)
    if scheme in ("", "file"):
        return _read_file(Path(parsed.path if scheme else uri), uri)
    if scheme == "pvc":
        return _read_file(_mounted("ARCLIGHT_PVC_ROOT", "/data", parsed), uri)
    if scheme == "configmap":
        return _read_file(_mounted("ARCLIGHT_CONFIGMAP_ROOT", "/etc/arclight/datasets", parsed),
                          uri)
    if scheme in ("http", "https"):
        return _read_http(uri, credentials_dir), parsed.path
    if scheme in FS_PACKAGES:
        return _read_fsspec(uri, scheme, credentials_dir), parsed.path
    raise DatasetError(f"unsupported dataset URI scheme {scheme!r} in {uri}",
                       fix="use sample://, a path, file://, https://, s3://, gs://, "
                           "pvc://CLAIM/PATH or configmap://NAME/KEY")


def _template(name: str) -> Template:
    try:
        return get_template(name)
    except KeyError:
        raise DatasetError(f"no sample dataset {name!r}",
                           fix=f"use sample://TEMPLATE with one of {', '.join(NAMES)}") from None


def _mounted(env: str, default: str, parsed) -> Path:
    root = Path(os.environ.get(env) or default).resolve()
    path = (root / parsed.netloc / parsed.path.lstrip("/")).resolve()
    if root not in path.parents:
        raise DatasetError(f"{parsed.geturl()} points outside {root}",
                           fix="name a file inside the volume, without '..'")
    return path


def _read_file(path: Path, uri: str) -> tuple[bytes, str]:
    if not path.is_file():
        raise DatasetError(f"{uri}: no such file {path}",
                           fix="check the path; pvc:// and configmap:// volumes must be mounted")
    return path.read_bytes(), path.name


def _read_http(uri: str, credentials_dir: str | None) -> bytes:
    headers = {}
    creds = Path(credentials_dir) if credentials_dir else None
    if creds and (creds / "token").is_file():
        headers["Authorization"] = "Bearer " + (creds / "token").read_text().strip()
    auth = None
    if creds and (creds / "username").is_file() and (creds / "password").is_file():
        auth = ((creds / "username").read_text().strip(), (creds / "password").read_text().strip())
    import httpx

    try:
        response = httpx.get(uri, headers=headers, auth=auth, timeout=HTTP_TIMEOUT_S,
                             follow_redirects=True)
    except httpx.HTTPError as exc:
        raise DatasetError(f"cannot download {uri}: {type(exc).__name__}",
                           fix="check the URL and that the pod can reach it") from None
    if response.status_code != 200:
        raise DatasetError(f"downloading {uri} returned HTTP {response.status_code}",
                           fix="check the URL; for private files put a 'token' (or "
                               "'username' and 'password') key in dataset.secretRef")
    return response.content


def _read_fsspec(uri: str, scheme: str, credentials_dir: str | None) -> bytes:
    package = FS_PACKAGES[scheme]
    if importlib.util.find_spec("fsspec") is None or importlib.util.find_spec(package) is None:
        raise DatasetError(f"reading {scheme}:// needs the Python packages fsspec and {package}",
                           fix=f"pip install fsspec {package} in the trainer image, or copy "
                               "the file to a PVC and use pvc://")
    import fsspec

    options = _storage_options(scheme, Path(credentials_dir) if credentials_dir else None)
    try:
        with fsspec.open(uri, "rb", **options) as handle:
            return handle.read()
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {uri}: {type(exc).__name__}",
                           fix="check the bucket, the object name and the credentials "
                               "in dataset.secretRef") from None


def _storage_options(scheme: str, creds: Path | None) -> dict:
    if creds is None:
        return {}

    def key(name: str) -> str | None:
        path = creds / name
        return path.read_text().strip() if path.is_file() else None

    if scheme == "s3":
        options: dict = {"key": key("AWS_ACCESS_KEY_ID"), "secret": key("AWS_SECRET_ACCESS_KEY")}
        if key("AWS_ENDPOINT_URL"):
            options["client_kwargs"] = {"endpoint_url": key("AWS_ENDPOINT_URL")}
        return {k: v for k, v in options.items() if v}
    accounts = sorted(creds.glob("*.json"))
    return {"token": str(accounts[0])} if accounts else {}


# --- parsing -----------------------------------------------------------------------------------

def _parse_json(data: bytes) -> list[dict]:
    try:
        rows = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"not valid JSON: {exc}",
                           fix='write a list of objects, e.g. df.to_json(path, orient="records")'
                           ) from None
    if not isinstance(rows, list):
        raise DatasetError("a JSON dataset must be a list of objects",
                           fix='df.to_json(path, orient="records"), or use format jsonl')
    return rows


def _parse_jsonl(data: bytes) -> list[dict]:
    rows = []
    lines = [line for line in data.decode("utf-8-sig", errors="replace").splitlines()
             if line.strip()]
    for row, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"not valid JSON: {exc.msg} (char {exc.pos})", row=row,
                               fix="one JSON object per line, e.g. "
                                   'df.to_json(path, orient="records", lines=True)') from None
    return rows


def _parse_csv(data: bytes) -> list[dict]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"not UTF-8 text: {exc.reason} at byte {exc.start}",
                           fix='save as UTF-8, e.g. df.to_csv(path, index=False, '
                               'encoding="utf-8")') from None
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row, record in enumerate(reader, 1):
        if None in record:
            raise DatasetError(f"{len(reader.fieldnames or [])} columns in the header but more "
                               "cells in this line", row=row,
                               fix="quote cells that contain commas, e.g. "
                                   "df.to_csv(path, index=False)")
        rows.append(record)
    columns = reader.fieldnames or []
    numeric = {c for c in columns if _numeric_column([r.get(c) for r in rows])}
    return [{c: _cell(r.get(c), c in numeric) for c in columns} for r in rows]


def _numeric_column(cells: list[str | None]) -> bool:
    filled = [c.strip() for c in cells if c and c.strip()]
    return bool(filled) and all(INT_RE.match(c) or FLOAT_RE.match(c) for c in filled)


def _cell(value: str | None, numeric: bool):
    if value is None or not value.strip():
        return None
    if numeric:
        return int(value) if INT_RE.match(value.strip()) else float(value)
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            try:  # pandas writes Python reprs of lists and dicts
                return ast.literal_eval(stripped)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return value
    return value


def _parse_parquet(data: bytes) -> list[dict]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError("reading parquet needs the Python package pyarrow",
                           fix="pip install pyarrow, or convert with df.to_json(path, "
                               'orient="records", lines=True)') from None
    try:
        return pq.read_table(io.BytesIO(data)).to_pylist()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise DatasetError(f"not a readable parquet file: {exc}",
                           fix="rewrite it with df.to_parquet(path)") from None


PARSERS = {"csv": _parse_csv, "json": _parse_json, "jsonl": _parse_jsonl,
           "parquet": _parse_parquet}


def _check_header(template: Template, items: list[dict]) -> None:
    first = items[0] if isinstance(items[0], dict) else {}
    have = set().union(*(i.keys() for i in items if isinstance(i, dict)))
    for col in template.columns:
        if not col.optional and col.name not in have:
            raise DatasetError(
                f"missing required column for {template.name} ({col.kind}: {col.doc}); "
                f"columns found: {', '.join(sorted(map(str, first))) or 'none'}",
                row=1, column=col.name,
                fix=f'df = df.rename(columns={{"<your column>": "{col.name}"}})')
