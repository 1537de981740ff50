"""The JSON Schema files in schemas/ are valid, documented, and cannot drift from
workers/core/events.py.

Drift is checked two ways: structurally (msgspec's generated schema of each Struct against the file:
property names, required sets, enum/const values, types, constraints, defaults) and behaviourally
(hypothesis: random valid Structs validate against the file; random schema-invalid mutations are
rejected by both the file and the codec).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker

from workers.core.codec import Codec
from workers.core.errors import InvalidEventError
from workers.core.events import EVENT_SCHEMAS, CategorizedEvent, ProductEvent
from workers.kafka.deadletter import DLQ_HEADERS, dead_letter_headers

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "schemas"
SCHEMAS: dict[str, dict[str, Any]] = {
    p.name.removesuffix(".schema.json"): json.loads(p.read_text(encoding="utf-8"))
    for p in sorted(SCHEMA_DIR.glob("*.schema.json"))
}
EXAMPLES: dict[str, Any] = {
    p.name.removesuffix(".json"): json.loads(p.read_text(encoding="utf-8"))
    for p in sorted((SCHEMA_DIR / "examples").glob("*.json"))
}
EVENT_NAMES = sorted(EVENT_SCHEMAS)

# jsonschema checks "date-time" only with an optional extra installed; check RFC 3339 here.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    datetime.fromisoformat(value.upper().replace("Z", "+00:00"))  # real date, real time
    return True


def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMAS[name], format_checker=FORMATS)


CODEC = Codec()


# --------------------------------------------------------------------------- files and examples


def test_every_schema_has_a_struct_and_an_example() -> None:
    assert set(SCHEMAS) == {*EVENT_SCHEMAS, "dead-letter.v1"}
    assert set(EXAMPLES) == set(SCHEMAS)


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    Draft202012Validator.check_schema(SCHEMAS[name])


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_metadata(name: str) -> None:
    schema = SCHEMAS[name]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:prodcat:schema:{name}"
    assert re.fullmatch(r".+\.v[0-9]+", name), "the major version is in the file name"
    assert schema["title"].strip()
    assert schema["description"].strip()


def _objects(node: Any) -> list[dict[str, Any]]:
    """Every (sub)schema that declares properties."""
    found = []
    if isinstance(node, dict):
        if "properties" in node and "type" in node:
            found.append(node)
        for value in node.values():
            found += _objects(value)
    elif isinstance(node, list):
        for value in node:
            found += _objects(value)
    return found


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_property_is_described_and_objects_are_closed(name: str) -> None:
    objects = _objects(SCHEMAS[name])
    assert objects
    for obj in objects:
        for prop, sub in obj["properties"].items():
            assert sub.get("description", "").strip(), f"{name}: {prop} has no description"
        if name != "dead-letter.v1":  # a header map: other headers are allowed
            assert obj["additionalProperties"] is False, f"{name}: {obj.get('title')}"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_example_is_valid(name: str) -> None:
    errors = [e.message for e in validator(name).iter_errors(EXAMPLES[name])]
    assert errors == []


def test_date_time_format_is_enforced() -> None:
    v = validator("model.live.v1")
    doc = dict(EXAMPLES["model.live.v1"])
    for bad in ["2024-06-14T00:15:00", "2024-06-14", "yesterday", "2024-13-14T00:15:00Z"]:
        doc["changed_at"] = bad
        assert not v.is_valid(doc), bad


def test_review_topic_shape_is_the_categorized_shape() -> None:
    doc = {**EXAMPLES["product.categorized.v1"], "needs_review": True}
    doc["review_reason"] = "low_confidence"
    assert validator("product.categorized.v1").is_valid(doc)
    assert CODEC.decode(json.dumps(doc).encode(), CategorizedEvent).review_reason == (
        "low_confidence"
    )


# --------------------------------------------------------------------------- structural drift

_KEYWORDS_BY_TYPE = {
    "string": ("minLength", "maxLength", "pattern", "format"),
    "number": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    "integer": ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"),
    "array": ("minItems", "maxItems"),
    "object": (),
    "boolean": (),
    "null": (),
}
_NO_DEFAULT = "<required>"


def shape(node: dict[str, Any], root: dict[str, Any]) -> frozenset[Any]:
    """A canonical, comparable form of a schema node: the set of alternatives it accepts.

    ``{"type": ["string", "null"], "maxLength": 3}`` and msgspec's
    ``{"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]}`` give the same shape, and
    so do ``{"const": "x"}`` and ``{"enum": ["x"]}``. Titles and descriptions are ignored.
    """
    if "$ref" in node:
        target = root["$defs"][node["$ref"].removeprefix("#/$defs/")]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    if "anyOf" in node:
        return frozenset().union(*(shape(n, root) for n in node["anyOf"]))
    alternatives: set[Any] = set()
    values = [node["const"]] if "const" in node else node.get("enum", [])
    if None in values:
        alternatives.add(("null", ()))
    if [v for v in values if v is not None]:
        alternatives.add(("enum", frozenset(json.dumps(v) for v in values if v is not None)))
    types = node.get("type", [])
    for t in [types] if isinstance(types, str) else types:
        keywords: tuple[Any, ...] = tuple((k, node[k]) for k in _KEYWORDS_BY_TYPE[t] if k in node)
        if t == "array":
            keywords += (("items", shape(node.get("items", {}), root)),)
        if t == "object":
            keywords += (("properties", properties_shape(node, root)),)
            keywords += (("required", frozenset(node.get("required", ()))),)
            extra = node.get("additionalProperties")
            if isinstance(extra, dict):  # a map's value type; `false` is the producer policy
                keywords += (("additionalProperties", shape(extra, root)),)
        alternatives.add((t, keywords))
    return frozenset(alternatives)


def properties_shape(node: dict[str, Any], root: dict[str, Any]) -> frozenset[Any]:
    return frozenset(
        (name, shape(sub, root), json.dumps(sub.get("default", _NO_DEFAULT)))
        for name, sub in node.get("properties", {}).items()
    )


def drift(struct: type[msgspec.Struct], files: list[dict[str, Any]]) -> list[str]:
    """Differences between a Struct and the schema file(s) it mirrors; empty when in step.

    Several files may share one Struct (``product.created``/``product.updated``): their
    ``event_type`` consts together must equal the Struct's ``event_type`` enum.
    """
    generated = msgspec.json.schema(struct)
    root = generated["$defs"][generated["$ref"].removeprefix("#/$defs/")]
    problems: list[str] = []
    props = root["properties"]
    for file in files:
        where = file["$id"]
        fprops = file["properties"]
        problems += [f"{where}: `{n}` is in the Struct only" for n in sorted(props.keys() - fprops)]
        problems += [f"{where}: `{n}` is in the file only" for n in sorted(fprops.keys() - props)]
        if set(root.get("required", [])) != set(file.get("required", [])):
            problems.append(
                f"{where}: required differs: struct {sorted(root.get('required', []))} "
                f"!= file {sorted(file.get('required', []))}"
            )
        for name in sorted(props.keys() & fprops.keys()):
            if name == "event_type" and len(files) > 1:
                continue
            if shape(props[name], generated) != shape(fprops[name], file):
                problems.append(f"{where}: `{name}` differs: struct {props[name]} != file")
            ours = props[name].get("default", _NO_DEFAULT)
            theirs = fprops[name].get("default", _NO_DEFAULT)
            if ours != theirs:
                problems.append(f"{where}: default of `{name}`: struct {ours!r} != file {theirs!r}")
    if len(files) > 1:
        consts = {f["properties"]["event_type"]["const"] for f in files}
        if set(props["event_type"].get("enum", [])) != consts:
            problems.append(f"event_type: struct {props['event_type']} != files {consts}")
    return problems


def files_of(struct: type[msgspec.Struct]) -> list[dict[str, Any]]:
    return [SCHEMAS[name] for name, s in EVENT_SCHEMAS.items() if s is struct]


@pytest.mark.parametrize("struct", list(dict.fromkeys(EVENT_SCHEMAS.values())))
def test_struct_matches_schema_file(struct: type[msgspec.Struct]) -> None:
    assert drift(struct, files_of(struct)) == []


def test_drift_detects_a_field_added_to_the_struct_only() -> None:
    class Wider(CategorizedEvent, kw_only=True, frozen=True, gc=False):
        shelf: str = ""

    assert drift(Wider, files_of(CategorizedEvent)) == [
        "urn:prodcat:schema:product.categorized.v1: `shelf` is in the Struct only"
    ]


def test_drift_detects_a_constraint_changed_in_the_struct_only() -> None:
    class Shorter(ProductEvent, kw_only=True, frozen=True, gc=False):
        title: Annotated[str, msgspec.Meta(min_length=1, max_length=999, pattern=r"\S")]

    problems = drift(Shorter, files_of(ProductEvent))
    assert len(problems) == 2
    assert all("`title` differs" in p for p in problems)


@pytest.mark.parametrize(
    ("edit", "expect"),
    [
        (lambda s: s["properties"].pop("brand"), "`brand` is in the Struct only"),
        (lambda s: s["required"].remove("title"), "required differs"),
        (lambda s: s["properties"]["currency"].update(maxLength=4), "`currency` differs"),
        (lambda s: s["properties"]["price"].update(type="number"), "`price` differs"),
        (lambda s: s["properties"]["brand"].update(default="n/a"), "default of `brand`"),
        (lambda s: s["properties"]["image_urls"]["items"].update(type="integer"), "`image_urls`"),
        (lambda s: s["properties"]["event_type"].update(const="product.deleted"), "event_type"),
        (lambda s: s["properties"].update(sku={"type": "string"}), "`sku` is in the file only"),
    ],
)
def test_drift_detects_a_schema_file_edit(edit: Any, expect: str) -> None:
    edited = copy.deepcopy(SCHEMAS["product.created.v1"])
    edit(edited)
    problems = drift(ProductEvent, [edited, SCHEMAS["product.updated.v1"]])
    assert problems
    assert any(expect in p for p in problems), problems


def test_drift_detects_an_enum_value_changed_in_a_nested_object() -> None:
    edited = copy.deepcopy(SCHEMAS["product.categorized.v1"])
    edited["$defs"]["alternative"]["properties"]["score"]["maximum"] = 100
    edited["properties"]["source"]["enum"].append("rules")
    problems = drift(CategorizedEvent, [edited])
    assert any("`alternatives` differs" in p for p in problems)
    assert any("`source` differs" in p for p in problems)


def test_dead_letter_headers_match_the_schema() -> None:
    schema = SCHEMAS["dead-letter.v1"]
    assert set(DLQ_HEADERS) == set(schema["properties"])
    for error in [InvalidEventError("ProductEvent: must not be blank", "$.title"), OSError("x")]:
        headers = dead_letter_headers(
            error, topic="product.created", partition=3, offset=17, worker="classify@h", attempt=2
        )
        as_map = {k: v.decode("utf-8") for k, v in headers}
        assert len(as_map) == len(headers)
        assert validator("dead-letter.v1").is_valid(as_map)
        assert (DLQ_HEADERS[2] in as_map) == isinstance(error, InvalidEventError)


# --------------------------------------------------------------------------- property tests

_OFFSETS = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-3))]


def strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    """Values of a msgspec type (from msgspec.inspect) that satisfy its constraints."""
    if isinstance(t, mi.StructType):
        return struct_strategy(t)
    if isinstance(t, mi.StrType):
        lo, hi = t.min_length or 0, t.max_length
        if t.pattern is None:
            return st.text(min_size=lo, max_size=min(hi or 30, 30))
        pattern = t.pattern
        if hi and re.fullmatch(r"\^\[[^\]]+\]\+\$", pattern):  # ^[0-9a-f]+$: respect lengths
            pattern = f"{pattern[:-2]}{{{lo},{hi}}}$"
        strings = st.from_regex(pattern, fullmatch=pattern.startswith("^"))
        return strings.filter(lambda s: lo <= len(s) <= (hi or len(s)))
    if isinstance(t, mi.IntType):
        return st.integers(min_value=t.ge or 0, max_value=t.le or 10**9)
    if isinstance(t, mi.FloatType):
        return st.floats(
            min_value=t.ge if t.ge is not None else t.gt,
            max_value=t.le,
            exclude_min=t.gt is not None,
            allow_nan=False,
            allow_infinity=False,
        )
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.ListType):
        hi = min(t.max_length or 3, 3)
        return st.lists(strategy(t.item_type), min_size=t.min_length or 0, max_size=hi)
    if isinstance(t, mi.DictType):
        return st.dictionaries(strategy(t.key_type), strategy(t.value_type), max_size=3)
    if isinstance(t, mi.DateTimeType):
        return st.datetimes(
            min_value=datetime(1970, 1, 2),
            max_value=datetime(2100, 1, 1),
            timezones=st.sampled_from(_OFFSETS),
        )
    if isinstance(t, mi.UnionType):
        return st.one_of([strategy(m) for m in t.types])
    raise NotImplementedError(t)


def struct_strategy(t: mi.StructType) -> st.SearchStrategy[Any]:
    required = {f.name: strategy(f.type) for f in t.fields if f.required}
    optional = {f.name: strategy(f.type) for f in t.fields if not f.required}

    def build(kwargs: dict[str, Any]) -> Any:
        try:
            return t.cls(**kwargs)
        except InvalidEventError:  # FeedbackEvent's if/then
            return None

    kwargs = st.fixed_dictionaries(required, optional=optional)
    return kwargs.map(build).filter(lambda e: e is not None)


def events(name: str) -> st.SearchStrategy[Any]:
    """Valid events for schema ``name`` (event_type set to that schema's const)."""
    const = SCHEMAS[name]["properties"]["event_type"]["const"]
    base = struct_strategy(mi.type_info(EVENT_SCHEMAS[name]))  # type: ignore[arg-type]
    return base.map(lambda e: msgspec.structs.replace(e, event_type=const))


PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize("name", EVENT_NAMES)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_valid_structs_validate_against_the_schema_file(name: str, data: st.DataObject) -> None:
    event = data.draw(events(name))
    encoded = CODEC.encode(event)
    errors = [e.message for e in validator(name).iter_errors(json.loads(encoded))]
    assert errors == []
    assert CODEC.decode(encoded, EVENT_SCHEMAS[name]) == event


def _json_types(value: Any) -> set[str]:
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number"}
    if isinstance(value, str):
        return {"string"}
    return {"array"} if isinstance(value, list) else {"object"}


def _allowed_types(sub: dict[str, Any]) -> set[str]:
    if "anyOf" in sub:
        return set().union(*(_allowed_types(alternative) for alternative in sub["anyOf"]))
    if "$ref" in sub:
        return {"object"}
    if "const" in sub or "enum" in sub:
        values = [sub["const"]] if "const" in sub else sub["enum"]
        return set().union(*(_json_types(v) for v in values))
    types = sub["type"]
    allowed = {types} if isinstance(types, str) else set(types)
    return allowed | ({"integer"} if "number" in allowed else set())


def mutations(name: str, doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Schema-invalid variants of a valid ``doc``: (what, property, mutated document)."""
    schema = SCHEMAS[name]
    found: list[tuple[str, str, dict[str, Any]]] = []

    def put(what: str, prop: str, value: Any) -> None:
        found.append((what, prop, {**doc, prop: value}))

    for prop, sub in schema["properties"].items():
        if prop in schema["required"]:
            found.append(("drop", prop, {k: v for k, v in doc.items() if k != prop}))
        allowed = _allowed_types(sub)
        for candidate in [12345, "text", True, [], {}]:
            if not _json_types(candidate) & allowed:
                put(f"type {type(candidate).__name__}", prop, candidate)
                break
        if "const" in sub or "enum" in sub:
            put("enum", prop, "not-a-valid-value")
        if sub.get("minLength"):
            put("minLength", prop, "")
        if "maxLength" in sub:
            put("maxLength", prop, "x" * (sub["maxLength"] + 1))
        if "pattern" in sub:
            size = max(sub.get("minLength", 1), 1)
            bad = [c * size for c in "! " if not re.search(sub["pattern"], c * size)]
            put("pattern", prop, bad[0])
        if "minimum" in sub:
            put("minimum", prop, sub["minimum"] - 1)
        if "exclusiveMinimum" in sub:
            put("exclusiveMinimum", prop, sub["exclusiveMinimum"])
        if "maximum" in sub:
            put("maximum", prop, sub["maximum"] + 0.5)
        if sub.get("format") == "date-time":
            put("naive date-time", prop, "2024-06-14T09:21:37")
            put("not a date-time", prop, "yesterday")
        if sub.get("minItems"):
            put("minItems", prop, [])
        if "maxItems" in sub:
            put("maxItems", prop, [doc.get(prop) or "x"] * (sub["maxItems"] + 1))
        items = sub.get("items", {})
        if items.get("minLength"):
            put("item minLength", prop, [""])
        if "$ref" in items:
            put("item missing fields", prop, [{}])
        if isinstance(sub.get("additionalProperties"), dict):
            value_type = sub["additionalProperties"]["type"]
            put("map value type", prop, {"k": "text" if value_type == "number" else 12345})
    if "if" in schema:  # category.feedback: action=correct needs category_path
        found.append(
            ("if/then", "category_path", {**doc, "action": "correct", "category_path": None})
        )
    return found


@pytest.mark.parametrize("name", EVENT_NAMES)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_invalid_mutations_are_rejected_by_schema_and_codec(name: str, data: st.DataObject) -> None:
    doc = json.loads(CODEC.encode(data.draw(events(name))))
    what, prop, mutated = data.draw(st.sampled_from(mutations(name, doc)))
    assert not validator(name).is_valid(mutated), f"mutation {what} of {prop} is valid"
    with pytest.raises(InvalidEventError) as err:
        CODEC.decode(json.dumps(mutated).encode(), EVENT_SCHEMAS[name])
    field = err.value.field
    assert field == f"$.{prop}" or field.startswith((f"$.{prop}.", f"$.{prop}[")), (what, field)


@pytest.mark.parametrize("name", EVENT_NAMES)
def test_every_kind_of_mutation_applies_to_the_example(name: str) -> None:
    """The mutation list above is not vacuous: each is invalid for the schema and the codec."""
    found = mutations(name, EXAMPLES[name])
    assert len(found) >= 2 * len(SCHEMAS[name]["properties"])
    for what, prop, mutated in found:
        assert not validator(name).is_valid(mutated), (what, prop)
        with pytest.raises(InvalidEventError):
            CODEC.decode(json.dumps(mutated).encode(), EVENT_SCHEMAS[name])


def test_unknown_fields_rejected_by_schema_but_ignored_by_the_reader() -> None:
    """The documented asymmetry: producers are strict, consumers are tolerant."""
    doc = {**EXAMPLES["product.created.v1"], "shelf_life_days": "180"}
    assert not validator("product.created.v1").is_valid(doc)
    event = CODEC.decode_product(json.dumps(doc).encode())
    assert not hasattr(event, "shelf_life_days")
    assert event.title == doc["title"]


def test_feedback_if_then_agrees_with_the_codec() -> None:
    v = validator("category.feedback.v1")
    base = EXAMPLES["category.feedback.v1"]
    for action, path, ok in [
        ("correct", None, False),
        ("correct", ["Grocery"], True),
        ("reject", None, True),
        ("accept", None, True),
    ]:
        doc = {**base, "action": action, "category_path": path}
        assert v.is_valid(doc) is ok, (action, path)
        payload = json.dumps(doc).encode()
        if ok:
            CODEC.decode(payload, EVENT_SCHEMAS["category.feedback.v1"])
        else:
            with pytest.raises(InvalidEventError) as err:
                CODEC.decode(payload, EVENT_SCHEMAS["category.feedback.v1"])
            assert err.value.field == "$.category_path"
    missing = {k: v for k, v in base.items() if k != "category_path"}
    assert not v.is_valid(missing)


@pytest.mark.parametrize("title", ["", " ", "\t\n", "\u3000", "\u00a0 ", "x" * 1001])
def test_bad_titles_rejected_by_both(title: str) -> None:
    doc = {**EXAMPLES["product.created.v1"], "title": title}
    assert not validator("product.created.v1").is_valid(doc)
    with pytest.raises(InvalidEventError) as err:
        CODEC.decode_product(json.dumps(doc).encode())
    assert err.value.field == "$.title"
