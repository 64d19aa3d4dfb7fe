"""What the spec tests share: the fixtures, the documented columns (read from the README, not
from the schema tables), and a check that no non-null value of an example is lost."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "spec"


@cache
def load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def http_operations() -> list[dict[str, Any]]:
    return load("http_examples.json")


def ws_operations() -> list[dict[str, Any]]:
    return load("ws_examples.json")


def operation(operation_id: str) -> dict[str, Any]:
    return next(op for op in http_operations() + ws_operations()
                if op["operationId"] == operation_id)


def example(name: str) -> Any:
    for op in http_operations() + ws_operations():
        for ex in op["examples"]:
            if ex["name"] == name:
                return ex["value"]
    raise KeyError(name)


# --- the documented columns: the README's table "Every call and its DataFrame" ---------------------

_ROW = re.compile(r"^\| `(inv\.(?:stream\.)?\w+)\([^`]*\)` \| ([^|]*) \| ([^|]*) \|$")


@cache
def documented() -> dict[str, tuple[str | None, tuple[str, ...]]]:
    """``"inv.quotes"`` -> (index name or None, columns), as the README documents them."""
    rows: dict[str, str] = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        found = _ROW.match(line.strip())
        if found:
            rows[found.group(1)] = found.group(3).split("<br>")[0].strip()
    out: dict[str, tuple[str | None, tuple[str, ...]]] = {}

    def resolve(name: str) -> tuple[str | None, tuple[str, ...]]:
        if name not in out:
            text = rows[name]
            alias = re.match(r"^as `(inv\.[\w.]+)`$", text)
            if alias:
                out[name] = resolve(alias.group(1))
            else:
                index = None
                if text.startswith("index "):
                    head, _, text = text.partition("; ")
                    index = head.removeprefix("index ").strip()
                out[name] = (index, tuple(c.strip() for c in text.split(",") if c.strip()))
        return out[name]

    for name in rows:
        if not rows[name].startswith("*"):
            resolve(name)
    return out


def assert_documented_columns(frame: pd.DataFrame, call: str) -> None:
    index, columns = documented()[call]
    if index is not None:
        assert frame.index.name == index, f"{call}: index {frame.index.name!r}, documented {index!r}"
    assert tuple(frame.columns) == columns, f"{call}: columns differ from the README"


# --- no value lost ------------------------------------------------------------------------------

def leaves(obj: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every non-null scalar of a JSON value, with its path (``list.0.price``)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from leaves(value, f"{path}.{key}" if path else key)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from leaves(value, f"{path}.{i}" if path else str(i))
    elif obj is not None:
        yield path, obj


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def frame_values(frame: pd.DataFrame) -> list[Any]:
    """Every non-missing scalar held by the frame: cells (nested objects unpacked), the index
    and ``attrs``."""
    found: list[Any] = []

    def add(value: Any) -> None:
        if isinstance(value, (dict, list)):
            found.extend(v for _, v in leaves(value))
        elif isinstance(value, np.generic):
            add(value.item())
        elif not _is_missing(value):
            found.append(value)

    for column in frame.columns:
        for value in frame[column].tolist():
            add(value)
    if not isinstance(frame.index, pd.RangeIndex):
        for value in frame.index.tolist():
            add(value)
    for value in frame.attrs.values():
        add(value)
    return found


def _as_time(value: Any) -> list[pd.Timestamp]:
    """The instants a wire value may stand for: ISO text, or epoch seconds or milliseconds."""
    try:
        if isinstance(value, str):
            stamp = pd.Timestamp(value)
            return [stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return [pd.Timestamp(value, unit="s", tz="UTC"), pd.Timestamp(value, unit="ms", tz="UTC")]
    except (ValueError, OverflowError):
        pass
    return []


def same(wire: Any, held: Any) -> bool:
    """Whether a value held by a frame is the wire value (numbers by value, text case-blind,
    times by instant; ids may change between number and text)."""
    if isinstance(held, pd.Timestamp):
        return any(held == t for t in _as_time(wire))
    if isinstance(held, str) and isinstance(wire, (int, float)) and not isinstance(wire, bool):
        held_times = _as_time(held) if "T" in held else []  # a time kept as ISO text (attrs)
        if held_times and any(held_times[0] == t for t in _as_time(wire)):
            return True
    if isinstance(wire, bool) or isinstance(held, bool):
        return isinstance(wire, bool) and isinstance(held, bool) and wire == held
    if isinstance(wire, (int, float)) and isinstance(held, (int, float)):
        return math.isclose(wire, held, rel_tol=1e-12, abs_tol=0.0)
    return str(wire).lower() == str(held).lower()


def assert_no_value_lost(body: Any, frame: pd.DataFrame, *, dropped: dict[str, str]) -> None:
    """Every non-null scalar of ``body`` is held by ``frame``, except the wire keys in
    ``dropped`` (key -> why). Besides each value being found, the frame holds at least as many
    non-null values as the body minus the dropped ones, so two fields cannot share one cell."""
    wanted = [(path, value) for path, value in leaves(body)
              if path.rsplit(".", 1)[-1] not in dropped]
    held = frame_values(frame)
    lost = [f"{path}={value!r}" for path, value in wanted
            if not any(same(value, h) for h in held)]
    assert not lost, f"values of the example missing from the frame: {lost}"
    assert len(held) >= len(wanted), f"{len(wanted)} values in the example, {len(held)} held"


# --- the spec's schemas as JSON Schema ------------------------------------------------------------

def _nullable(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` -> JSON Schema (null allowed); recursively."""
    if isinstance(node, list):
        return [_nullable(n) for n in node]
    if not isinstance(node, dict):
        return node
    node = {k: _nullable(v) for k, v in node.items()}
    if node.pop("nullable", False):
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
        else:
            node = {"anyOf": [{"type": "null"}, node]}
    return node


def _closed(node: Any, in_all_of: bool = False) -> Any:
    """Objects with listed properties admit no other keys (the spec documents every key)."""
    if isinstance(node, list):
        return [_closed(n, in_all_of) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v, in_all_of or k == "allOf") for k, v in node.items()}
    if "properties" in out and "additionalProperties" not in out and not in_all_of:
        out["additionalProperties"] = False
    return out


@cache
def spec_schemas() -> dict[str, Any]:
    return {name: _closed(_nullable(schema)) for name, schema in load("schemas.json").items()}


@cache
def _validator(schema_name: str) -> Any:
    import jsonschema

    root = {"$ref": f"#/components/schemas/{schema_name}",
            "components": {"schemas": spec_schemas()}}
    return jsonschema.Draft7Validator(root)


def inline_errors(instance: Any, schema: dict[str, Any]) -> list[Any]:
    """The jsonschema errors of ``instance`` against a schema written inline in the spec."""
    import jsonschema

    root = {**_closed(_nullable(schema)), "components": {"schemas": spec_schemas()}}
    return list(jsonschema.Draft7Validator(root).iter_errors(instance))


def validation_errors(instance: Any, schema_name: str) -> list[Any]:
    """The jsonschema errors of ``instance`` against the spec's ``schema_name`` (unfiltered)."""
    return list(_validator(schema_name).iter_errors(instance))


def describe(error: Any) -> list[tuple[str, str, str]]:
    """The (rule, wire key, value) triples of a validation error, the form SPEC_QUIRKS lists."""
    key = next((str(p) for p in reversed(error.path) if isinstance(p, str)), "")
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return [("undocumented", k, "*") for k in extra]
    if error.validator in ("type", "anyOf") and error.instance is None:
        return [("null", key, "*")]
    if error.validator == "enum":
        return [("enum", key, str(error.instance))]
    if error.validator == "type":
        return [("type", key, type(error.instance).__name__)]
    return [(str(error.validator), key, repr(error.instance)[:60])]


def unexplained(errors: list[Any], seen: set[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """The error triples that SPEC_QUIRKS does not explain; the explained ones go to ``seen``."""
    bad = []
    for error in errors:
        for triple in describe(error):
            rule, key, value = triple
            quirk = next((q for q in ((rule, key, value), (rule, key, "*")) if q in SPEC_QUIRKS),
                         None)
            if quirk is None:
                bad.append(triple)
            else:
                seen.add(quirk)
    return bad


# --- the spec's own quirks: where its examples (and so the server) and its schemas disagree -------
# (rule, wire key, value or "*") -> why it is tolerated. Rules: "null" (null where the schema
# lacks `nullable`), "enum" (a value outside the enum), "type" (another JSON type: the value is
# the type found), "undocumented" (a key the schema does not list).
ITS_QUIRKS = (("enum", "exchange", "ITS"), ("enum", "ex", "ITS"))
_NULLABLE = "null in the spec's own examples, but the schema lacks `nullable`"
SPEC_QUIRKS: dict[tuple[str, str, str], str] = {
    **{("null", key, "*"): _NULLABLE for key in (
        "comment", "cmt", "error", "err", "updateTime", "ut", "iceberg", "i",
        "repoSpecificFields", "r", "accruedInt", "acci", "accruedInterest", "accrued_interest",
        "obMsTimestamp", "ob_ms_timestamp", "tso", "openInterest", "open_interest", "oi",
        "exchangeOrderId", "eid")},
    ("enum", "condition", "LessOrEqual"):
        "HTTP examples spell the condition `LessOrEqual`, the enum `lessorequal`",
    ("enum", "cnd", "LessOrEqual"):
        "HTTP examples spell the condition `LessOrEqual`, the enum `lessorequal`",
    **{("enum", key, "*"): "the enum lists the categories as numbers (and null), the examples "
                           "as text (`\"2\"`), the description `\"\"` for none"
       for key in ("complexProductCategory", "cpct")},
    ("undocumented", "bp2v", "*"): "the Slim summary WebSocket example spells `bp2v`, the "
                                   "schema and the HTTP example `bpv2`",
    **{quirk: "Invia lists the ITS exchange (united instruments); ALOR's enum has MOEX and "
              "SPBX only" for quirk in ITS_QUIRKS},
    ("type", "id", "int"): "stop-order examples give a number, the schema a string",
    ("type", "exchangeOrderId", "int"): "stop-order examples give a number, the schema a string",
    ("type", "eid", "int"): "stop-order examples give a number, the schema a string",
    ("type", "orderno", "int"): "all-trades examples give 0, the schema a string",
    ("type", "list", "dict"):
        "all-trades history examples give `list` one object, the schema an array",
    ("undocumented", "h", "*"): "the Slim history example lists candles under `h`, "
                                "the schema under `history`",
    **{("undocumented", key, "*"): "in the Heavy security example, not in the schema"
       for key in ("nominalCurrency", "settlementCurrency", "underlyingCurrency")},
}

# Examples whose whole shape differs from their route's schema: validated against this schema.
SPEC_EXAMPLE_SHAPES: dict[str, tuple[str, str]] = {
    "RiskRates": ("response_RiskRate", "one bare record; the schema is the {total, list} envelope"),
    **{f"Trade_{fmt}": (f"response_Trade_{fmt}", "one trade; the deprecated /md/stats routes "
                                                 "answer an array of them")
       for fmt in ("Simple", "Slim", "Heavy")},
}
