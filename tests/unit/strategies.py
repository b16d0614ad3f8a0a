"""Hypothesis strategies derived from the API models' JSON Schemas (test code, no I/O).

``from_schema`` is a small JSON Schema -> strategy converter for the subset pydantic emits
for the spec models ($defs/$ref, anyOf, const, enum, pattern, min/max, oneOf-required, open
and typed maps). hypothesis-jsonschema was tried first: 0.23.1 breaks on hypothesis 6.170
(``'many' object has no attribute 'more'``) and takes ~30 s to canonicalise TrainingRunSpec.
``pattern`` strings come from ``regex`` (a converter over ``re``'s parser) because
``st.from_regex`` costs 7-45 ms a draw here, and a spec has dozens of patterned fields.
An object gets its required fields and at most ``MAX_OPTIONAL`` of its optional ones, so that
documents stay small; across thousands of examples every field is drawn.

``near_miss`` takes a document from ``from_schema`` and breaks it in one place: a value of
the wrong type, an unknown field, a required field removed, a number out of range, a string
outside its pattern, enum or length. Broken documents may still validate (pydantic coerces
"5" to 5); the properties only need both paths exercised.
"""
from __future__ import annotations

import copy
import re
import re._constants as sre
import re._parser as sre_parse
from collections.abc import Mapping
from typing import Any, NamedTuple

from hypothesis import strategies as st

Schema = dict[str, Any]
Path = tuple[str | int, ...]
UNBOUNDED = 2**31  # integers without a maximum are drawn below min + this
MAX_OPTIONAL = 3
MAX_REPEAT = 6
ALPHABET = "".join(map(chr, range(0x20, 0x7F))) + "\té€☃"
CATEGORIES = {sre.CATEGORY_DIGIT: "0123456789", sre.CATEGORY_SPACE: " \t",
              sre.CATEGORY_WORD: "".join(c for c in ALPHABET if c.isalnum() or c == "_")}

KEYS = st.text(min_size=1, max_size=12)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)
WRONG_VALUES = (None, True, 0, -1, 2.5, "", "x", [], [1], {}, {"a": 1})
RANDOM = st.randoms(use_true_random=True)  # seeded from the draw: reproducible, unbiased
BAD_STRINGS = ("", " ", "NOT a valid Value!", "x" * 300, "auto", "0", "-1", "1e999")


# --- regular expressions -------------------------------------------------------------------

def regex(pattern: str) -> st.SearchStrategy[str]:
    """Strings that ``re.fullmatch`` ``pattern`` (anchors, classes, groups, |, repeats)."""
    return _strategy_of(_sequence(sre_parse.parse(pattern))).filter(
        re.compile(pattern).fullmatch)


Part = str | st.SearchStrategy[str]


def _strategy_of(part: Part) -> st.SearchStrategy[str]:
    return st.just(part) if isinstance(part, str) else part


def _sequence(items: Any) -> Part:
    """A constant string, or the strategy of the items (constants cost no draw)."""
    parts: list[Part] = []
    for op, arg in items:
        part = _token(op, arg)
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        elif part != "":
            parts.append(part)
    drawn = [part for part in parts if not isinstance(part, str)]
    if not drawn or parts == drawn[:1]:
        return "".join(parts) if not drawn else drawn[0]

    def join(values: tuple[str, ...]) -> str:
        it = iter(values)
        return "".join(part if isinstance(part, str) else next(it) for part in parts)

    return st.tuples(*drawn).map(join)


def _chars(op: Any, arg: Any) -> str | None:
    """The characters one token matches, or None when it is not a single character."""
    if op is sre.LITERAL:
        return chr(arg)
    if op is sre.NOT_LITERAL:
        return ALPHABET.replace(chr(arg), "")
    if op is sre.ANY:
        return ALPHABET
    if op is not sre.IN:
        return None
    chosen = set()
    for kind, value in arg:
        if kind is sre.LITERAL:
            chosen.add(chr(value))
        elif kind is sre.RANGE:
            chosen.update(map(chr, range(value[0], value[1] + 1)))
        elif kind is sre.CATEGORY:
            chosen.update(CATEGORIES[value])
    negate = any(kind is sre.NEGATE for kind, _ in arg)
    return "".join(c for c in ALPHABET if c not in chosen) if negate else "".join(sorted(chosen))


def _token(op: Any, arg: Any) -> Part:
    if op is sre.LITERAL:
        return chr(arg)
    if op is sre.AT:
        return ""
    chars = _chars(op, arg)
    if chars is not None:
        return st.sampled_from(chars)
    if op is sre.BRANCH:
        return st.one_of([_strategy_of(_sequence(branch)) for branch in arg[1]])
    if op is sre.SUBPATTERN:
        return _sequence(arg[-1])
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
        low, high, sub = arg
        high = min(high, low + MAX_REPEAT)
        single = _chars(*sub[0]) if len(sub) == 1 else None
        if single is not None:  # one string node: much cheaper than a list of characters
            return st.text(alphabet=single, min_size=low, max_size=high)
        return st.lists(_strategy_of(_sequence(sub)), min_size=low, max_size=high).map("".join)
    raise NotImplementedError(f"regex token {op}")


UNKNOWN_FIELDS = regex(r"[a-z][A-Za-z0-9]{0,11}")


# --- JSON Schema -----------------------------------------------------------------------------

def resolve(node: Schema, defs: Schema) -> Schema:
    """``node`` with its ``$ref`` inlined (sibling keys such as a description win)."""
    while "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def branches(node: Schema, defs: Schema) -> list[Schema]:
    """The alternatives of ``node`` (one unless it is an anyOf), refs inlined."""
    node = resolve(node, defs)
    if "anyOf" not in node:
        return [node]
    return [b for option in node["anyOf"] for b in branches(option, defs)]


class _Context(NamedTuple):
    defs: Schema
    overrides: Mapping[str, st.SearchStrategy[Any]]


def from_schema(schema: Schema, overrides: Mapping[str, st.SearchStrategy[Any]] | None = None
                ) -> st.SearchStrategy[Any]:
    """Documents valid against ``schema`` (a model's ``model_json_schema(by_alias=True)``);
    ``overrides`` maps ``Title.property`` to the strategy of that property (for constraints
    only a validator knows)."""
    return _strategy(schema, _Context(schema.get("$defs", {}), overrides or {}))


def _strategy(node: Schema, ctx: _Context, nullable: bool = True) -> st.SearchStrategy[Any]:
    options = [b for b in branches(node, ctx.defs) if nullable or b.get("type") != "null"]
    if len(options) > 1:
        return st.one_of([_strategy(option, ctx) for option in options])
    node = options[0]
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "string":
        low, high = node.get("minLength", 0), node.get("maxLength")
        if "pattern" in node:
            return regex(node["pattern"]).filter(lambda v: low <= len(v) <= (high or len(v)))
        return st.text(min_size=low, max_size=max(low, min(high or 24, 24)))
    if kind == "integer":
        low = node.get("minimum", -UNBOUNDED)
        return st.integers(low, node.get("maximum", low + UNBOUNDED))
    if kind == "number":
        return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False,
                         allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        low = node.get("minItems", 0)
        return st.lists(_strategy(node.get("items", {}), ctx), min_size=low,
                        max_size=min(node.get("maxItems", low + 2), low + 2))
    if kind == "object" or "properties" in node:
        return _object(node, ctx)
    return JSON  # an untyped node (Any)


def _object(node: Schema, ctx: _Context) -> st.SearchStrategy[dict[str, Any]]:
    props = node.get("properties", {})
    if not props:
        extra = node.get("additionalProperties", True)
        values = JSON if extra in (True, {}) else _strategy(extra, ctx)
        return st.dictionaries(KEYS, values, max_size=2)
    required = [k for k in props if k in node.get("required", ())]
    choices = [c["required"] for c in node.get("oneOf", ()) if "required" in c]
    exclusive = {k for choice in choices for k in choice}  # oneOf-required: exactly one
    optional = [k for k in props if k not in required and k not in exclusive]
    names = {k: f"{node.get('title')}.{k}" for k in props}
    fields = {k: ctx.overrides[names[k]] if names[k] in ctx.overrides else _strategy(v, ctx)
              for k, v in props.items()}
    chosen = {k: _strategy(props[k], ctx, nullable=False) for k in exclusive}
    choice = st.sampled_from(choices) if choices else st.just(())
    extras = st.lists(st.sampled_from(optional), unique=True, max_size=MAX_OPTIONAL) \
        if optional else st.just([])

    @st.composite
    def draw_object(draw: st.DrawFn) -> dict[str, Any]:
        doc = {k: draw(fields[k]) for k in required}
        doc.update({k: draw(chosen[k]) for k in draw(choice)})
        return {**doc, **{k: draw(fields[k]) for k in draw(extras)}}

    return draw_object()


# --- near misses -----------------------------------------------------------------------------

def sites(doc: Any, node: Schema, defs: Schema, path: Path = ()) -> list[tuple[Path, Any, Schema]]:
    """Every place in ``doc`` with each schema alternative that may describe it."""
    found: list[tuple[Path, Any, Schema]] = []
    for option in branches(node, defs):
        found.append((path, doc, option))
        if isinstance(doc, dict) and "properties" in option:
            for key, value in doc.items():
                if key in option["properties"]:
                    found += sites(value, option["properties"][key], defs, (*path, key))
        elif isinstance(doc, list) and "items" in option:
            for index, value in enumerate(doc):
                found += sites(value, option["items"], defs, (*path, index))
    return found


def _replaced(doc: Any, path: Path, value: Any, delete: bool = False) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def near_miss(schema: Schema, overrides: Mapping[str, st.SearchStrategy[Any]] | None = None,
              valid: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """Documents from ``valid`` (default: ``from_schema``) broken in one drawn place."""
    return _near_miss(from_schema(schema, overrides) if valid is None else valid, schema)


def _pick(draw: st.DrawFn, items: list[Any]) -> Any:
    """One of ``items``, uniformly: ``sampled_from`` and small ``integers`` favour the first
    ones, here the first field of every document."""
    return draw(RANDOM).choice(items)


@st.composite
def _near_miss(draw: st.DrawFn, valid: st.SearchStrategy[Any], schema: Schema) -> Any:
    defs = schema.get("$defs", {})
    doc = draw(valid)
    root, *inner = sites(doc, schema, defs)
    leaves = [site for site in inner if not isinstance(site[1], dict | list)]
    # values carry most constraints: three in four near misses break one; the whole spec
    # is replaced rarely
    path, value, node = _pick(draw, [*leaves * 3, *inner, root] if leaves else [*inner, root])
    options: list[tuple[str, Any]] = [
        ("set", v) for v in WRONG_VALUES if type(v) is not type(value)]
    if isinstance(value, dict):
        unknown = draw(UNKNOWN_FIELDS.filter(lambda k: k not in value))
        options.append(("set", {**value, unknown: 1}))
        wanted = [*node.get("required", ()),
                  *(k for choice in node.get("oneOf", ()) for k in choice.get("required", ()))]
        options += [("drop", k) for k in wanted if k in value]
    if isinstance(value, int) and not isinstance(value, bool):
        options += [("set", node[k] + d) for k, d in (("minimum", -1), ("maximum", 1))
                    if k in node]
        options += [("set", 10**30), ("set", -(10**30))]
    if isinstance(value, str):
        options += [("set", s) for s in BAD_STRINGS if s != value]
    if isinstance(value, list) and value:
        options += [("set", []), ("set", value + value)]
    action, arg = _pick(draw, options)
    if action == "drop":
        return _replaced(doc, (*path, arg), None, delete=True)
    return _replaced(doc, path, arg)


def documents(schema: Schema, overrides: Mapping[str, st.SearchStrategy[Any]] | None = None,
              valid: st.SearchStrategy[Any] | None = None) -> st.SearchStrategy[Any]:
    """Valid documents (``valid``, default: ``from_schema``) and near misses, half each."""
    valid = from_schema(schema, overrides) if valid is None else valid
    return _either(valid, _near_miss(valid, schema))


@st.composite
def _either(draw: st.DrawFn, first: st.SearchStrategy[Any], second: st.SearchStrategy[Any]
            ) -> Any:
    """``first`` or ``second``, half each (``one_of`` draws its first branch far more)."""
    return draw(second if draw(st.booleans()) else first)
