"""Turn the pydantic models into Kubernetes structural OpenAPI v3 schemas and CRD manifests.

Kubernetes wants every node typed, `$ref`s inlined, no `anyOf` for Optional, no titles, and
`x-kubernetes-*` markers for int-or-string values and free-form maps.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pydantic import BaseModel

from arclight.api.common import CATEGORIES, GROUP, VERSION

INT_OR_STRING = "x-kubernetes-int-or-string"
PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields"

_KEPT = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "enum",
    "default",
    "pattern",
    "format",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "oneOf",
    "additionalProperties",
    INT_OR_STRING,
    PRESERVE_UNKNOWN,
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
}
_KEY_ORDER = {key: rank for rank, key in enumerate(("description", "type", "default"))}
_DROPPED = {"title", "$defs", "examples"}
_STRING_CONSTRAINTS = ("pattern", "minLength", "maxLength", "enum", "format")
_NUMBER_CONSTRAINTS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")


class SchemaError(ValueError):
    """The model uses a construct that has no structural-schema equivalent."""


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The Kubernetes structural schema of a pydantic model (validation mode, camelCase)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _convert(raw, raw.get("$defs", {}), model.__name__)


def _convert(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    node = _inline_ref(node, defs)
    if "const" in node:
        node = {**node, "enum": [node["const"]]}
        node.pop("const")
    while "anyOf" in node:  # Optional[int | str] nests one union in another
        node = _collapse_any_of(node, defs, where)
    unknown = set(node) - _KEPT - _DROPPED
    if unknown:
        raise SchemaError(f"{where}: unsupported JSON Schema keys {sorted(unknown)}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or (key == "default" and value in (None, "")):
            continue  # Kubernetes 1.20 reads a "" default back as null and refuses it
        if key == "properties":
            out[key] = {name: _convert(sub, defs, f"{where}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{where}[]")
        elif key == "additionalProperties":
            _convert_additional(out, node, value, defs, where)
        else:
            out[key] = value
    if "properties" in out:
        out["type"] = "object"
    if not (out.get("type") or out.get(INT_OR_STRING) or out.get(PRESERVE_UNKNOWN)):
        raise SchemaError(f"{where}: schema node has no type")
    return dict(sorted(out.items(), key=lambda item: _KEY_ORDER.get(item[0], len(_KEY_ORDER))))


def _inline_ref(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Replace `$ref` by the referenced definition; sibling keys (a field's description) win."""
    if "$ref" not in node:
        return node
    target = defs[node["$ref"].rsplit("/", 1)[-1]]
    siblings = {key: value for key, value in node.items() if key != "$ref"}
    return {**_inline_ref(target, defs), **siblings}


def _convert_additional(
    out: dict[str, Any], node: dict[str, Any], value: Any, defs: dict[str, Any], where: str
) -> None:
    """Maps: typed values stay a schema; `Any` values become a free-form preserved object."""
    if value is False:
        return  # closed objects: the API server prunes unknown fields anyway
    if value is True or value == {}:
        if node.get("properties"):
            raise SchemaError(f"{where}: free-form object with fixed properties")
        out[PRESERVE_UNKNOWN] = True
        return
    out["additionalProperties"] = _convert(value, defs, f"{where}{{}}")


def _collapse_any_of(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    """Optional[X] -> X; int | str marked int-or-string -> one untyped int-or-string node."""
    options = [_inline_ref(option, defs) for option in node["anyOf"]]
    rest = {key: value for key, value in node.items() if key != "anyOf"}
    non_null = [option for option in options if option.get("type") != "null"]
    if node.get(INT_OR_STRING):
        merged: dict[str, Any] = {}
        for option in non_null:
            option = {**option, "enum": [option["const"]]} if "const" in option else option
            kind = option.get("type")
            allowed = _STRING_CONSTRAINTS if kind == "string" else _NUMBER_CONSTRAINTS
            if kind not in ("string", "integer"):
                raise SchemaError(f"{where}: int-or-string option of type {kind}")
            merged.update({key: option[key] for key in allowed if key in option})
        if "enum" in merged:  # an enum would reject integers: express the words as a pattern
            words = "|".join(merged.pop("enum"))
            merged["pattern"] = f"^({words})$"
        return {**merged, **rest}
    if len(non_null) == 1:
        return {**non_null[0], **{k: v for k, v in rest.items() if v is not None}}
    raise SchemaError(f"{where}: unions other than Optional or int-or-string are not structural")


def openapi_schema(module: ModuleType) -> dict[str, Any]:
    """The `openAPIV3Schema` of a kind module (see `arclight.api.KIND_MODULES`)."""
    root: type[BaseModel] = getattr(module, module.KIND)
    spec_model = root.model_fields["spec"].annotation
    if not (isinstance(spec_model, type) and issubclass(spec_model, BaseModel)):
        raise SchemaError(f"{root.__name__}.spec is not a model")
    status_model = _status_model(root)
    return {
        "type": "object",
        "description": (module.__doc__ or module.KIND).strip().splitlines()[0],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": structural_schema(spec_model),
            "status": structural_schema(status_model),
        },
        "required": ["spec"],
    }


def _status_model(root: type[BaseModel]) -> type[BaseModel]:
    annotation = root.model_fields["status"].annotation
    for candidate in getattr(annotation, "__args__", (annotation,)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    raise SchemaError(f"{root.__name__}.status is not a model")


def crd_manifest(module: ModuleType) -> dict[str, Any]:
    """The CustomResourceDefinition (apiextensions.k8s.io/v1) of a kind module."""
    subresources: dict[str, Any] = {"status": {}}
    if getattr(module, "SCALE", None):
        subresources["scale"] = dict(module.SCALE)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{module.PLURAL}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "arclight"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": module.KIND,
                "listKind": f"{module.KIND}List",
                "plural": module.PLURAL,
                "singular": module.SINGULAR,
                "shortNames": list(module.SHORT_NAMES),
                "categories": list(CATEGORIES),
            },
            "scope": module.SCOPE,
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(module)},
                    "subresources": subresources,
                    "additionalPrinterColumns": list(module.PRINTER_COLUMNS),
                }
            ],
        },
    }
