"""Dataset loading: every URI kind we can serve locally, every format, detection, bad data."""

from __future__ import annotations

import csv
import http.server
import json
import threading
from typing import ClassVar

import pandas as pd
import pytest
from arclight_trainer.datasets import Dataset, detect_format, detect_task_type, load_dataset, split
from arclight_trainer.templates import NAMES, get_template
from arclight_trainer.templates.base import DatasetError

pytestmark = pytest.mark.unit

MATH = [{"question": "What is 7 + 5?", "answer": 12}, {"question": "What is 9 - 4?", "answer": 5},
        {"question": "What is 2.5 + 1?", "answer": 3.5}]
DOCQA = [{"question": "Who founded Altora?", "passages": ["Altora was founded by Tariq Aziz.",
                                                           "Bexwell is in Ghent."],
          "answers": ["Tariq Aziz"], "evidence_ids": ["P1"]},
         {"question": "Where is Bexwell?", "passages": ["Altora is in Leeds.", "Bexwell is in Ghent."],
          "answers": ["Ghent"], "evidence_ids": ["P2"]}]


def write(path, items, fmt):
    """Write rows the way users do: with pandas (CSV cells holding lists as Python reprs)."""
    df = pd.DataFrame(items)
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "json":
        df.to_json(path, orient="records")
    elif fmt == "jsonl":
        df.to_json(path, orient="records", lines=True)
    else:
        df.to_parquet(path)
    return path


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl", "parquet"])
@pytest.mark.parametrize("items, task_type", [(MATH, "math"), (DOCQA, "qa")])
def test_every_format_round_trips(tmp_path, fmt, items, task_type):
    path = write(tmp_path / f"data.{fmt}", items, fmt)
    ds = load_dataset(str(path))
    assert ds.items == items and ds.format == fmt and ds.task_type == task_type
    # and by content alone, without the extension
    bare = tmp_path / "data"
    bare.write_bytes(path.read_bytes())
    assert load_dataset(f"file://{bare}").format == fmt


def test_csv_with_json_cells_written_by_hand(tmp_path):
    path = tmp_path / "plans.csv"
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["goal", "tasks", "dependencies"])
        writer.writerow(["Bake", json.dumps(["mix", "bake"]), json.dumps(["mix>bake"])])
    ds = load_dataset(str(path))
    assert ds.task_type == "planning"
    assert ds.items == [{"goal": "Bake", "tasks": ["mix", "bake"], "dependencies": ["mix>bake"]}]


@pytest.mark.parametrize("name", NAMES)
def test_every_sample_dataset_loads_with_its_template(name):
    ds = load_dataset(f"sample://{name}")
    assert ds.format == "jsonl" and ds.task_type == get_template(name).task_type
    assert ds.source == f"sample://{name}" and len(ds.items) >= 60
    assert detect_task_type(ds.items) == get_template(name).task_type


def test_detect_task_type_picks_the_most_specific_template_or_generic():
    assert detect_task_type(MATH) == "math"
    assert detect_task_type(DOCQA) == "qa"
    research = [{k: v for k, v in row.items() if k != "passages"} for row in DOCQA]
    assert detect_task_type(research) == "research"
    assert detect_task_type([{"prompt": "hi", "label": 1}]) == "generic"
    generic = Dataset(items=[{"prompt": "hi"}], format="json", task_type="generic", source="x")
    assert generic.task_type == "generic"


def test_generic_rows_load_without_a_template(tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text('{"prompt": "hi", "label": 1}\n{"prompt": "yo", "label": 0}\n')
    ds = load_dataset(str(path))
    assert ds.task_type == "generic" and len(ds.items) == 2


def test_detect_format_by_extension_and_content():
    assert detect_format("x.ndjson", b"") == "jsonl"
    assert detect_format("x", b"PAR1....") == "parquet"
    assert detect_format("x", b'  [{"a": 1}]') == "json"
    assert detect_format("x", b'{"a": 1}\n{"a": 2}\n') == "jsonl"
    assert detect_format("x", b'{\n "a": 1\n}') == "json"
    assert detect_format("x", b"a,b\n1,2\n") == "csv"


def test_non_numeric_value_names_row_column_and_the_pandas_fix(tmp_path):
    path = tmp_path / "math.csv"
    path.write_text("question,answer\nWhat is 1 + 1?,2\nWhat is 2 + 2?,four\n")
    with pytest.raises(DatasetError) as err:
        load_dataset(str(path), template=get_template("math-solver"))
    assert (err.value.row, err.value.column) == (2, "answer")
    assert 'df["answer"] = pd.to_numeric(df["answer"], errors="coerce")' in err.value.fix
    assert "row 2, column 'answer'" in str(err.value)


def test_missing_required_column_suggests_a_rename(tmp_path):
    path = write(tmp_path / "math.jsonl", [{"question": "What is 1 + 1?", "solution": 2}],
                 "jsonl")
    with pytest.raises(DatasetError) as err:
        load_dataset(str(path), template=get_template("math-solver"))
    assert err.value.column == "answer"
    assert 'df.rename(columns={"<your column>": "answer"})' in err.value.fix
    assert "solution" in err.value.message


def test_missing_value_in_one_row(tmp_path):
    path = tmp_path / "math.jsonl"
    path.write_text('{"question": "What is 1 + 1?", "answer": 2}\n{"question": "", "answer": 3}\n')
    with pytest.raises(DatasetError) as err:
        load_dataset(str(path))
    assert (err.value.row, err.value.column) == (2, "question")
    assert 'dropna(subset=["question"])' in err.value.fix


@pytest.mark.parametrize("content", [b"", b"\n  \n"])
def test_empty_file_is_rejected(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match="empty"):
        load_dataset(str(path))


def test_header_only_csv_has_no_rows(tmp_path):
    path = tmp_path / "math.csv"
    path.write_text("question,answer\n")
    with pytest.raises(DatasetError, match="no rows"):
        load_dataset(str(path))


def test_broken_jsonl_line_names_the_row(tmp_path):
    path = tmp_path / "math.jsonl"
    path.write_text('{"question": "What is 1 + 1?", "answer": 2}\n{"question": oops}\n')
    with pytest.raises(DatasetError) as err:
        load_dataset(str(path))
    assert err.value.row == 2 and "lines=True" in err.value.fix


def test_bad_list_cell_and_bad_template_specific_value(tmp_path):
    path = tmp_path / "plans.jsonl"
    path.write_text(json.dumps({"goal": "g", "tasks": "mix, bake", "dependencies": []}) + "\n")
    with pytest.raises(DatasetError) as err:
        load_dataset(str(path), template=get_template("task-planner"))
    assert err.value.column == "tasks" and "json.dumps" in err.value.fix
    path.write_text(json.dumps({"goal": "g", "tasks": ["mix"], "dependencies": ["mix>eat"]}))
    with pytest.raises(DatasetError) as err:
        load_dataset(str(path), fmt="jsonl", template=get_template("task-planner"))
    assert err.value.column == "dependencies"
    sql = tmp_path / "sql.jsonl"
    sql.write_text(json.dumps({"question": "q", "gold_sql": "SELECT nope FROM orders"}) + "\n")
    with pytest.raises(DatasetError, match="gold query fails") as err:
        load_dataset(str(sql))
    assert err.value.column == "gold_sql"


def test_split_is_deterministic_and_disjoint():
    ds = load_dataset("sample://math-solver")
    train, val = split(ds, "0.2", seed=42)
    assert len(val) == 48 and len(train) == 192
    assert split(ds, "0.2", seed=42) == (train, val)
    assert split(ds, "0.2", seed=7)[1] != val
    keys = {json.dumps(i, sort_keys=True) for i in train}
    assert not keys & {json.dumps(i, sort_keys=True) for i in val}
    tiny = Dataset(items=MATH[:2], format="json", task_type="math", source="x")
    assert [len(part) for part in split(tiny, "0.01", seed=1)] == [1, 1]
    assert split(tiny, "0", seed=1)[1] == []
    with pytest.raises(ValueError):
        split(ds, "1", seed=1)


def test_pvc_and_configmap_uris_read_the_mounted_volumes(tmp_path, monkeypatch):
    monkeypatch.setenv("ARCLIGHT_PVC_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("ARCLIGHT_CONFIGMAP_ROOT", str(tmp_path / "cm"))
    (tmp_path / "data" / "claim" / "sets").mkdir(parents=True)
    (tmp_path / "cm" / "mathcm").mkdir(parents=True)
    write(tmp_path / "data" / "claim" / "sets" / "math.parquet", MATH, "parquet")
    write(tmp_path / "cm" / "mathcm" / "rows", MATH, "jsonl")
    assert load_dataset("pvc://claim/sets/math.parquet").items == MATH
    assert load_dataset("configmap://mathcm/rows").format == "jsonl"
    with pytest.raises(DatasetError, match="outside"):
        load_dataset("pvc://claim/../../etc/passwd")
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset("pvc://claim/missing.csv")


def test_unknown_scheme_sample_and_format_are_explained():
    with pytest.raises(DatasetError, match="unsupported dataset URI scheme 'ftp'"):
        load_dataset("ftp://host/x.csv")
    with pytest.raises(DatasetError, match="no sample dataset 'poetry'") as err:
        load_dataset("sample://poetry")
    assert "math-solver" in err.value.fix
    with pytest.raises(DatasetError, match="unknown format"):
        load_dataset("sample://math-solver", fmt="xlsx")


def test_object_store_without_its_package_names_the_package():
    import importlib.util

    if importlib.util.find_spec("s3fs") is not None:
        pytest.skip("s3fs is installed; this checks the message shown when it is not")
    with pytest.raises(DatasetError, match="s3fs") as err:
        load_dataset("s3://bucket/math.jsonl")
    assert "pip install fsspec s3fs" in err.value.fix


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b""
    seen: ClassVar[list] = []

    def do_GET(self):
        type(self).seen.append(self.headers.get("Authorization"))
        if self.path != "/math.jsonl":
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def http_server():
    _Handler.body = "\n".join(json.dumps(r) for r in MATH).encode()
    _Handler.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=5)


def test_http_download_with_a_bearer_token(http_server, tmp_path):
    creds = tmp_path / "secret"
    creds.mkdir()
    (creds / "token").write_text("s3cr3t-token\n")
    ds = load_dataset(f"{http_server}/math.jsonl", credentials_dir=str(creds))
    assert ds.items == MATH and ds.format == "jsonl"
    assert _Handler.seen == ["Bearer s3cr3t-token"]
    with pytest.raises(DatasetError, match="HTTP 404") as err:
        load_dataset(f"{http_server}/other.jsonl", credentials_dir=str(creds))
    assert "s3cr3t" not in str(err.value)
