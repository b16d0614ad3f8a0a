"""The generated CRDs: in sync with the models, structural, and shaped as API.md says."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from arclight.api import KIND_MODULES
from arclight.api.schema import SchemaError, structural_schema
from pydantic import BaseModel, Field

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GEN = ROOT / "hack" / "gen-crds.py"
CRD_FILES = sorted((ROOT / "crds").glob("*.arclight.dev.yaml"))
TYPED_MARKERS = ("type", "x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields")


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "crds" / f"{name}.arclight.dev.yaml").read_text())


def _schema(name: str) -> dict[str, Any]:
    return _load(name)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _walk(node: dict[str, Any], path: str = ""):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def _gen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GEN), *args], check=False, capture_output=True, text=True, timeout=60
    )


def test_committed_crds_match_the_models():
    result = _gen("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_reports_drift_with_a_diff(tmp_path):
    for path in CRD_FILES:
        shutil.copy(path, tmp_path / path.name)
    edited = tmp_path / "trainingruns.arclight.dev.yaml"
    edited.write_text(edited.read_text().replace("- tr\n", "- trn\n"))
    result = _gen("--check", "--out", str(tmp_path))
    assert result.returncode == 1
    assert "-    - trn" in result.stdout and "+    - tr" in result.stdout


def test_one_file_per_kind():
    assert [path.name for path in CRD_FILES] == sorted(
        f"{module.PLURAL}.arclight.dev.yaml" for module in KIND_MODULES
    )


@pytest.mark.parametrize("path", CRD_FILES, ids=lambda path: path.name.split(".")[0])
def test_schema_is_structural(path):
    schema = yaml.safe_load(path.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    nodes = list(_walk(schema))
    assert len(nodes) > 20
    for where, node in nodes:
        assert any(node.get(marker) for marker in TYPED_MARKERS), f"{where} has no type"
        assert not {"anyOf", "allOf", "not", "$ref", "$defs", "title", "const"} & set(node), where
        assert not ("properties" in node and "additionalProperties" in node), where
        assert node.get("default") != "", f"{where}: 1.20 reads a \"\" default back as null"
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, where
        for option in node.get("oneOf", []):
            assert set(option) == {"required"}, f"{where}: oneOf may only list required fields"
            assert set(option["required"]) <= set(node["properties"]), where
        if "default" in node and node.get("type") == "string" and "enum" in node:
            assert node["default"] in node["enum"], where


def test_crd_names_scope_and_subresources():
    expected = {
        "trainingruns": ("TrainingRun", ["tr"], "Namespaced"),
        "sweeps": ("Sweep", ["sw"], "Namespaced"),
        "modeldeployments": ("ModelDeployment", ["md"], "Namespaced"),
        "creditbudgets": ("CreditBudget", ["cb"], "Cluster"),
    }
    for plural, (kind, short_names, scope) in expected.items():
        crd = _load(plural)
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == f"{plural}.arclight.dev"
        names = crd["spec"]["names"]
        assert (names["kind"], names["shortNames"], names["categories"]) == (
            kind,
            short_names,
            ["arclight"],
        )
        assert crd["spec"]["scope"] == scope
        (version,) = crd["spec"]["versions"]
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        assert version["subresources"]["status"] == {}
    sweep_scale = _load("sweeps")["spec"]["versions"][0]["subresources"]["scale"]
    assert sweep_scale == {
        "specReplicasPath": ".spec.parallelism",
        "statusReplicasPath": ".status.running",
    }


def _resolve(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    node = schema
    for part in json_path.split("[")[0].strip(".").split("."):
        if part == "metadata":
            return node["properties"]["metadata"]
        node = node.get("properties", {}).get(part) or (node.get("items") or {}).get(
            "properties", {}
        ).get(part)
        if node is None:
            return None
    return node


def test_printer_columns_point_at_schema_fields():
    columns = _load("trainingruns")["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [column["name"] for column in columns] == [
        "Template",
        "Phase",
        "Progress",
        "Reward",
        "Credits",
        "Age",
    ]
    for module in KIND_MODULES:
        schema = _schema(module.PLURAL)
        crd_columns = _load(module.PLURAL)["spec"]["versions"][0]["additionalPrinterColumns"]
        for column in crd_columns:
            assert _resolve(schema, column["jsonPath"]) is not None, (module.KIND, column)


def test_auto_or_integer_fields_are_int_or_string_with_bounds():
    spec = _schema("trainingruns")["properties"]["spec"]
    batch = spec["properties"]["hyperparameters"]["properties"]["batchSize"]
    assert batch == {
        "description": batch["description"],
        "default": "auto",
        "minimum": 1,
        "pattern": "^(auto)$",
        "x-kubernetes-int-or-string": True,
    }
    memory = spec["properties"]["resources"]["properties"]["memory"]
    assert memory["x-kubernetes-int-or-string"] and memory["pattern"].startswith("^(\\+|-)?")


def test_only_free_form_maps_preserve_unknown_fields():
    preserved = {
        (module.PLURAL, where)
        for module in KIND_MODULES
        for where, node in _walk(_schema(module.PLURAL))
        if node.get("x-kubernetes-preserve-unknown-fields")
    }
    assert preserved == {
        ("trainingruns", ".spec.reward.components[].params"),
        ("trainingruns", ".status.resolved.hyperparameters.earlyStopping"),
        ("sweeps", ".spec.trainingRunTemplate.reward.components[].params"),
    }


def test_conditions_are_a_list_map_keyed_by_type():
    for module in KIND_MODULES:
        conditions = _schema(module.PLURAL)["properties"]["status"]["properties"]["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        assert set(conditions["items"]["required"]) >= {"type", "status"}


def test_one_of_rules_reach_the_schema():
    spec = _schema("trainingruns")["properties"]["spec"]
    assert spec["oneOf"] == [{"required": ["template"]}, {"required": ["agent"]}]
    source = _schema("modeldeployments")["properties"]["spec"]["properties"]["source"]
    assert source["oneOf"] == [
        {"required": ["trainingRun"]},
        {"required": ["mlflowModel"]},
        {"required": ["uri"]},
    ]


def test_non_structural_unions_are_refused():
    class Loose(BaseModel):
        value: int | str

    with pytest.raises(SchemaError, match="Loose.value"):
        structural_schema(Loose)


def test_optional_collapses_to_the_plain_type():
    class Sample(BaseModel):
        name: Annotated[str, Field(min_length=2)] | None = Field(None, description="A name.")

    assert structural_schema(Sample)["properties"]["name"] == {
        "description": "A name.",
        "type": "string",
        "minLength": 2,
    }
