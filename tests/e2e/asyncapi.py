"""Check north payloads against docs/asyncapi.yaml with a tiny JSON Schema validator.

It covers the subset the document uses: ``type`` (one or a list, ``null`` included), ``enum``,
``const``, ``properties``, ``required``, ``additionalProperties`` (bool or schema), ``items``,
``maxItems``, ``minimum``, ``minLength``, ``pattern`` and local ``$ref``. A keyword it does not
know is an error, so the document cannot silently grow beyond what the tests check.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
KNOWN = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "items",
    "maxItems", "minimum", "minLength", "pattern", "$ref", "description",
}  # fmt: skip
TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
}


class SchemaError(AssertionError):
    pass


def load() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text(encoding="utf-8"))


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise SchemaError(f"only local $ref supported, got {ref}")
        node: Any = doc
        for part in ref[2:].split("/"):
            node = node[part]
        schema = node
    return schema


def validate(doc: dict[str, Any], schema: dict[str, Any], value: Any, path: str = "$") -> None:
    """Raise ``SchemaError`` naming the path of the first violation."""
    schema = _resolve(doc, schema)
    unknown = set(schema) - KNOWN
    if unknown:
        raise SchemaError(f"{path}: the test validator does not know {sorted(unknown)}")
    _check_scalar(schema, value, path)
    if isinstance(value, list):
        _check_list(doc, schema, value, path)
    if isinstance(value, dict):
        _check_object(doc, schema, value, path)


def _check_scalar(schema: dict[str, Any], value: Any, path: str) -> None:
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(TYPES[t](value) for t in types):
            raise SchemaError(f"{path}: {value!r} is not of type {types}")
    if "const" in schema and value != schema["const"]:
        raise SchemaError(f"{path}: {value!r} != const {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{path}: {value!r} not in {schema['enum']}")
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and "minimum" in schema and value < schema["minimum"]:
        raise SchemaError(f"{path}: {value} < minimum {schema['minimum']}")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            raise SchemaError(f"{path}: {value!r} shorter than {schema['minLength']}")
        if "pattern" in schema and not re.search(schema["pattern"], value):
            raise SchemaError(f"{path}: {value!r} does not match {schema['pattern']}")


def _check_list(doc: dict[str, Any], schema: dict[str, Any], value: list[Any], path: str) -> None:
    if len(value) > schema.get("maxItems", len(value)):
        raise SchemaError(f"{path}: more than {schema['maxItems']} items")
    if "items" in schema:
        for i, item in enumerate(value):
            validate(doc, schema["items"], item, f"{path}[{i}]")


def _check_object(
    doc: dict[str, Any], schema: dict[str, Any], value: dict[str, Any], path: str
) -> None:
    props = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            raise SchemaError(f"{path}: required field {name!r} missing")
    extra = schema.get("additionalProperties", True)
    for name, item in value.items():
        if name in props:
            validate(doc, props[name], item, f"{path}.{name}")
        elif extra is False:
            raise SchemaError(f"{path}: field {name!r} is not in the schema")
        elif isinstance(extra, dict):
            validate(doc, extra, item, f"{path}.{name}")


def channel_for(doc: dict[str, Any], topic: str) -> tuple[str, dict[str, Any]]:
    """The channel whose template matches ``topic`` and its message payload schema."""
    for name, channel in doc["channels"].items():
        pattern = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(name)) + "$"
        if re.match(pattern, topic):
            op = channel.get("subscribe") or channel.get("publish")
            message = _resolve(doc, op["message"])
            return name, message["payload"]
    raise SchemaError(f"topic {topic} matches no channel of docs/asyncapi.yaml")


def check(doc: dict[str, Any], topic: str, payload: Any) -> str:
    """Validate one received north message; returns the channel name it belongs to."""
    name, schema = channel_for(doc, topic)
    validate(doc, schema, payload, f"{topic}")
    return name
