"""Checking a request against the JSON Schema the OpenAPI document publishes for it, so that the
document says exactly what the server accepts: the same schema object is served and enforced.

The subset understood (every keyword ``cloud.web.api.schemas`` uses; an unknown one is an error
at start-up, never silently ignored): ``type`` (a name or a list), ``enum``, ``const``,
``minimum``/``maximum``, ``minLength``/``maxLength``, ``pattern``, ``properties``,
``required``, ``additionalProperties`` (false or a schema), ``minProperties``/
``maxProperties``, ``items``, ``minItems``/``maxItems``, ``uniqueItems``, ``oneOf``,
``anyOf``, ``$ref`` (to ``#/components/schemas``); annotations (``description``,
``example``, ``examples``, ``title``, ``default``, ``x-…``) are skipped.

Errors are ``InvalidError`` (422) naming the field as a path: ``customer.name``,
``meters[2].transfer_in_micro_yuan``, ``args.alarm1_micro_yuan``. Query parameters and headers
arrive as text and are converted first (``param``): integers are decimal digits with an optional
``-``, booleans ``true``/``false``.

The web forms can call ``check`` with the same schemas to mark a field the same way.
"""

from __future__ import annotations

import decimal
import re
from typing import Any

from cloud.errors import InvalidError

_ANNOTATIONS = {"description", "example", "examples", "title", "default", "deprecated", "format"}
_KNOWN = {
    "type",
    "enum",
    "const",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "minItems",
    "maxItems",
    "uniqueItems",
    "oneOf",
    "anyOf",
    "$ref",
}
_NUMBER_TEXT = re.compile(r"^-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$")


def json_number(text: str) -> int | float:
    """A JSON number with a fraction or exponent: an integer when its value is one (JSON
    Schema counts ``5.0`` as an integer, and clients send it so), else a float, which every
    field of this API refuses. Exact: ``1.0000000000000001e3`` is not an integer."""
    number = decimal.Decimal(text)
    if number.is_finite() and number.adjusted() < 40 and number == number.to_integral_value():
        return int(number)
    return float(text)


_PATTERNS: dict[str, re.Pattern[str]] = {}


class _Fail(Exception):
    """One refusal inside ``check``: where (a path of keys and indexes) and why."""

    def __init__(self, path: tuple[Any, ...], message: str, structural: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        # A missing or unknown field: the value has another shape than this branch of a oneOf
        # (a refused value, by contrast, says the branch fits and the value is wrong).
        self.structural = structural


def field_name(path: tuple[Any, ...]) -> str:
    """``("meters", 2, "meter")`` → ``meters[2].meter``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _matches_type(value: Any, name: str) -> bool:
    kind = _type_of(value)
    return kind == name or (name == "number" and kind == "integer")


_ARTICLE = {"integer": "an integer", "array": "a list", "object": "an object", "null": "null"}


def _describe(types: list[str]) -> str:
    return " or ".join(_ARTICLE.get(t, f"a {t}") for t in types)


def _pattern(text: str) -> re.Pattern[str]:
    compiled = _PATTERNS.get(text)
    if compiled is None:
        compiled = _PATTERNS[text] = re.compile(text)
    return compiled


class Validator:
    """Checks values against schemas whose ``$ref`` point into ``components``."""

    def __init__(self, components: dict[str, Any] | None = None) -> None:
        self.components = components or {}

    def check(self, schema: dict[str, Any], value: Any, field: str = "") -> None:
        """Raise ``InvalidError`` naming the field unless ``value`` satisfies ``schema``."""
        base: tuple[Any, ...] = (field,) if field else ()
        try:
            self._check(schema, value, base)
        except _Fail as fail:
            raise InvalidError(fail.message, field_name(fail.path) or None) from None

    def lint(self, schema: Any, where: str = "schema") -> None:
        """Refuse keywords this validator does not enforce (so the document never promises
        what the server would not check)."""
        if not isinstance(schema, dict):
            return
        for key in schema:
            if key not in _KNOWN and key not in _ANNOTATIONS and not key.startswith("x-"):
                raise ValueError(f"{where}: keyword {key!r} is not enforced by the validator")
        for key in ("properties",):
            for name, sub in (schema.get(key) or {}).items():
                self.lint(sub, f"{where}.{name}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                self.lint(schema[key], f"{where}.{key}")
        for key in ("oneOf", "anyOf"):
            for i, sub in enumerate(schema.get(key) or []):
                self.lint(sub, f"{where}.{key}[{i}]")
        if "pattern" in schema:
            _pattern(schema["pattern"])

    # -- the keywords ------------------------------------------------------------------------

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.components[name]
        return schema

    def _check(self, schema: dict[str, Any], value: Any, path: tuple[Any, ...]) -> None:
        schema = self._resolve(schema)
        name = field_name(path) or "the body"
        if "oneOf" in schema:
            self._one_of(schema, value, path)
        if "anyOf" in schema:
            self._any_of(schema, value, path)
        types = schema.get("type")
        if types is not None:
            allowed = types if isinstance(types, list) else [types]
            if not any(_matches_type(value, t) for t in allowed):
                raise _Fail(path, f"{name} must be {_describe(allowed)}, got {value!r:.60}")
        if "const" in schema and value != schema["const"]:
            raise _Fail(path, f"{name} must be {schema['const']!r}, got {value!r:.60}")
        if "enum" in schema and value not in schema["enum"]:
            options = ", ".join(str(v) for v in schema["enum"])
            raise _Fail(path, f"{name} must be one of {options}; got {value!r:.60}")
        kind = _type_of(value)
        if kind in ("integer", "number"):
            self._number(schema, value, path, name)
        elif kind == "string":
            self._string(schema, value, path, name)
        elif kind == "array":
            self._array(schema, value, path, name)
        elif kind == "object":
            self._object(schema, value, path, name)

    def _number(self, schema: dict[str, Any], value: Any, path: tuple[Any, ...], name: str) -> None:
        low, high = schema.get("minimum"), schema.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                text = f"between {low} and {high}"
            elif low is not None:
                text = f"at least {low}"
            else:
                text = f"at most {high}"
            raise _Fail(path, f"{name} must be {text}, got {value}")

    def _string(self, schema: dict[str, Any], value: str, path: tuple[Any, ...], name: str) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            raise _Fail(path, f"{name} must have at least {schema['minLength']} character(s)")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            raise _Fail(
                path,
                f"{name} is {len(value)} characters long; at most {schema['maxLength']} "
                "are allowed",
            )
        if "pattern" in schema and not _pattern(schema["pattern"]).search(value):
            rule = schema.get("x-rule") or f"match {schema['pattern']}"
            raise _Fail(path, f"{name} must be {rule}; got {value!r:.60}")

    def _array(
        self, schema: dict[str, Any], value: list[Any], path: tuple[Any, ...], name: str
    ) -> None:
        if "minItems" in schema and len(value) < schema["minItems"]:
            raise _Fail(path, f"{name} needs at least {schema['minItems']} item(s)")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            raise _Fail(path, f"{name} has {len(value)} items; at most {schema['maxItems']}")
        if schema.get("uniqueItems"):
            seen: list[Any] = []
            for i, item in enumerate(value):
                if item in seen:
                    raise _Fail((*path, i), f"{field_name((*path, i))} repeats {item!r:.60}")
                seen.append(item)
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self._check(items, item, (*path, i))

    def _object(
        self, schema: dict[str, Any], value: dict[str, Any], path: tuple[Any, ...], name: str
    ) -> None:
        props: dict[str, Any] = schema.get("properties") or {}
        for key in schema.get("required") or ():
            if key not in value:
                raise _Fail((*path, key), f"{field_name((*path, key))} is required", True)
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in props:
                self._check(props[key], item, (*path, key))
            elif extra is False:
                known = ", ".join(sorted(props)) or "none"
                raise _Fail(
                    (*path, key),
                    f"unknown field {field_name((*path, key))!r}; known: {known}",
                    True,
                )
            elif isinstance(extra, dict):
                self._check(extra, item, (*path, key))
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            raise _Fail(path, f"{name} needs at least {schema['minProperties']} field(s)")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            raise _Fail(path, f"{name} takes at most {schema['maxProperties']} field(s)")

    def _branches(
        self, schema: dict[str, Any], key: str, value: Any, path: tuple[Any, ...]
    ) -> tuple[int, list[_Fail]]:
        passed, fails = 0, []
        for branch in schema[key]:
            try:
                self._check(branch, value, path)
                passed += 1
            except _Fail as fail:
                fails.append(fail)
        return passed, fails

    def _best(self, schema: dict[str, Any], fails: list[_Fail], path: tuple[Any, ...]) -> _Fail:
        """The refusal of the branch that got furthest (its error lies deepest); a schema's
        ``x-error`` speaks instead when no branch got past the top level."""
        best = max(fails, key=lambda f: (len(f.path), not f.structural))
        key = schema.get("x-discriminator")
        if key is not None and best.path == (*path, key):
            return best  # the kind itself is wrong: say which kinds there are
        if best.structural and len(best.path) <= len(path) + 1 and schema.get("x-error"):
            return _Fail(best.path if len(best.path) > len(path) else path, schema["x-error"])
        return best

    def _one_of(self, schema: dict[str, Any], value: Any, path: tuple[Any, ...]) -> None:
        passed, fails = self._branches(schema, "oneOf", value, path)
        if passed == 1:
            return
        if passed > 1:
            raise _Fail(path, schema.get("x-error") or f"{field_name(path)} is ambiguous")
        key = schema.get("x-discriminator")
        if key is not None and isinstance(value, dict) and key in value:
            # Only the branches for the value's kind (say, its op) can explain what is wrong.
            mine = [
                fail
                for fail, branch in zip(fails, schema["oneOf"], strict=True)
                if self._accepts((branch.get("properties") or {}).get(key), value[key])
            ]
            fails = mine or [_Fail((*path, key), self._kinds(schema, key, value[key]))]
        raise self._best(schema, fails, path)

    def _accepts(self, schema: dict[str, Any] | None, value: Any) -> bool:
        try:
            self._check(schema or {}, value, ())
        except _Fail:
            return False
        return True

    def _kinds(self, schema: dict[str, Any], key: str, value: Any) -> str:
        options: list[str] = []
        for branch in schema["oneOf"]:
            sub = (branch.get("properties") or {}).get(key) or {}
            for option in sub.get("enum", [sub["const"]] if "const" in sub else []):
                if option not in options:
                    options.append(option)
        return f"{key} must be one of {', '.join(map(str, options))}; got {value!r:.60}"

    def _any_of(self, schema: dict[str, Any], value: Any, path: tuple[Any, ...]) -> None:
        passed, fails = self._branches(schema, "anyOf", value, path)
        if not passed:
            raise self._best(schema, fails, path)


def param(schema: dict[str, Any], raw: str, name: str, validator: Validator) -> Any:
    """A query parameter or header (text) converted by its schema's type and checked."""
    types = schema.get("type")
    allowed = types if isinstance(types, list) else [types]
    value: Any = raw
    if "integer" in allowed:
        number = json_number(raw) if len(raw) <= 64 and _NUMBER_TEXT.match(raw) else None
        if not isinstance(number, int):
            raise InvalidError(f"{name} must be an integer, got {raw!r:.60}", name)
        value = number
    elif "boolean" in allowed:
        if raw not in ("true", "false"):
            raise InvalidError(f"{name} must be true or false, got {raw!r:.60}", name)
        value = raw == "true"
    validator.check(schema, value, name)
    return value
