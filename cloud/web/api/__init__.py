"""The REST API, ``/api/v1``: JSON in and out, bearer tokens, permissions by role, errors as
``{"error": {"code", "message", "field"}}`` with a 4xx that says what to fix.

Every endpoint is declared with ``@endpoint(...)``: the rule, the method, the permission it
needs, and what the OpenAPI document (``/api/v1/openapi.json``, built from these declarations
by ``cloud.web.api.openapi``) says about it. The wrapper authenticates first (so a request without a
valid token gets 401 whatever else is wrong with it), then checks the permission (403), then
checks the request against the very schemas the document publishes (``cloud.web.api.validate``:
path, query and header parameters, the body; 422 naming the field), then opens a database
session for the request — read-only for GET — and commits when the view returns. Principals are
cached per token for ``PrincipalCache.ttl_s`` (30 s). Views receive a ``Ctx`` (its ``params``
hold the checked parameters) and their path parameters and return ``(payload, status)`` or a
payload (200).

Path parameters: ``<int:name>`` is a record id (1 … 2⁶³−1; routed by a converter that takes any
run of digits, so an id out of range is a 422 naming it, not a 500 or a 404), ``<name>`` an
identifier (``cloud.values.ID_PATTERN``) unless ``params`` declares it otherwise. Request body
objects are closed: an unknown field is refused by name.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy.orm import Session
from werkzeug.routing import BaseConverter

from cloud.access import auth
from cloud.db import Database
from cloud.errors import ForbiddenError, InvalidError, ServiceError
from cloud.localtime import parse_date, parse_time
from cloud.web.api import validate
from cloud.web.api.schemas import COMPONENTS, ID_STR, RECORD_ID, closed
from cloud.web.errors import service_error_response

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)
# The most a request body may be (a import of thousands of meters goes through the CLI).
MAX_BODY_BYTES = 1 << 20
VALIDATOR = validate.Validator(COMPONENTS)
_INT_RULE = re.compile(r"<int:(\w+)>")
# Examples the document gives for path parameters (the demo's and the tests' park uses them).
PATH_EXAMPLES = {"meter_id": "m-101", "site_id": "studio", "tariff_id": "flat-1"}
_RULE_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


class _Digits(BaseConverter):
    """Any run of digits (with a sign): the id's range is the schema's to check (422)."""

    regex = r"-?[0-9]{1,30}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: Any) -> str:
        return str(int(value))


def _add_converter(state: Any) -> None:
    state.app.url_map.converters.setdefault("digits", _Digits)


bp.record_once(_add_converter)


@dataclass
class Param:
    """A query parameter or header, for parsing docs and the OpenAPI document."""

    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False
    where: str = "query"
    example: Any = None


@dataclass
class Endpoint:
    rule: str
    method: str
    permission: str | None
    summary: str
    tag: str
    params: list[Param] = field(default_factory=list)
    body: dict[str, Any] | None = None
    response: dict[str, Any] | None = None
    status: int = 200
    name: str = ""
    # Other success statuses: {status: (description, schema or None for the response's)}.
    also: dict[int, tuple[str, dict[str, Any] | None]] = field(default_factory=dict)
    # OpenAPI links from the success response: {name: (operationId, {param: expression})}.
    links: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    body_required: bool = True

    def path_params(self) -> list[Param]:
        """Every path parameter: declared in ``params``, else by the rule's converter."""
        declared = {p.name: p for p in self.params if p.where == "path"}
        out = []
        for conv, name in _RULE_PARAM.findall(self.rule):
            schema = RECORD_ID if conv == "int" else ID_STR
            default = Param(name, schema, "", True, "path", PATH_EXAMPLES.get(name, 1))
            out.append(declared.get(name, default))
        return out

    def other_params(self) -> list[Param]:
        return [p for p in self.params if p.where != "path"]


ENDPOINTS: list[Endpoint] = []


@dataclass
class Ctx:
    """What a view gets: the session, who is asking, the JSON body and the query args."""

    session: Session
    principal: auth.Principal | None
    body: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def actor(self) -> Any:
        assert self.principal is not None
        return self.principal.actor

    # -- query parameter helpers (errors name the parameter) ---------------------------------

    def arg(self, name: str, default: Any = None) -> Any:
        value = request.args.get(name)
        return default if value in (None, "") else value

    def int_arg(
        self, name: str, default: int | None = None, low: int | None = None, high: int | None = None
    ) -> int | None:
        raw = self.arg(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidError(f"{name} must be an integer, got {raw!r}", name) from None
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidError(f"{name} must be between {low} and {high}, got {value}", name)
        return value

    def bool_arg(self, name: str) -> bool | None:
        raw = self.arg(name)
        if raw is None:
            return None
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise InvalidError(f"{name} must be true or false, got {raw!r}", name)

    def ts_arg(self, name: str) -> int | None:
        """Epoch seconds, or an ISO 8601 date/time (UTC unless it carries an offset)."""
        raw = self.arg(name)
        return None if raw is None else parse_time(raw, name)

    def date_arg(self, name: str, default: dt.date | None = None) -> dt.date | None:
        raw = self.arg(name)
        return default if raw is None else parse_date(raw, name)


def _json_error(err: ServiceError) -> Response:
    return service_error_response(err)


def _json(payload: Any, status: int) -> Response:
    return Response(
        json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        status=status,
        mimetype="application/json",
    )


def database() -> Database:
    db: Database = current_app.extensions["gridvend.db"]
    return db


def _body() -> dict[str, Any] | None:
    """The JSON object sent, or None when there is no body."""
    if request.method == "GET":
        return None
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise ServiceError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    raw = request.get_data(cache=True)
    if not raw:
        return None
    if not request.is_json:
        raise ServiceError("send the body as JSON with Content-Type: application/json")
    try:
        data = json.loads(raw, parse_float=validate.json_number)
        # A lone UTF-16 surrogate ("\ud800") is valid JSON spelling but no text at all.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (ValueError, RecursionError) as exc:
        raise ServiceError(f"the body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(data, dict):
        raise ServiceError("the body must be a JSON object")
    return data


def _param_values(spec: Endpoint, path: dict[str, Any]) -> dict[str, Any]:
    """Path, query and header parameters checked against their published schemas."""
    out: dict[str, Any] = {}
    for p in spec.path_params():
        VALIDATOR.check(p.schema, path[p.name], p.name)
        out[p.name] = path[p.name]
    for p in spec.other_params():
        if p.where == "header":
            raw = request.headers.get(p.name)
            given = [] if raw is None else [raw]
        else:
            given = request.args.getlist(p.name)
        if len(given) > 1:
            raise InvalidError(f"{p.name} is given {len(given)} times; give it once", p.name)
        if not given:
            if p.required:
                raise InvalidError(f"{p.name} is required", p.name)
            continue
        out[p.name] = validate.param(p.schema, given[0], p.name, VALIDATOR)
    return out


def _checked_body(spec: Endpoint) -> dict[str, Any]:
    body = _body()
    if spec.body is None:
        if body:
            name = next(iter(body))
            raise InvalidError(f"this request takes no body; unknown field {name!r}", name)
        return {}
    if body is None:
        if spec.body_required:
            raise InvalidError("a JSON object body is required", None)
        return {}
    VALIDATOR.check(spec.body, body)
    return body


def principals() -> auth.PrincipalCache:
    cache: auth.PrincipalCache = current_app.extensions["gridvend.principals"]
    return cache


def _principal(db: Database, permission: str | None) -> auth.Principal | None:
    """Who asks, checked against ``permission`` (401/403), in a short read-only session of its
    own so that a write request holds the database's write lock no longer than it must."""
    if permission is None:
        return None
    with db.session(readonly=True) as s:
        principal = auth.authenticate(s, request.headers.get("Authorization"), cache=principals())
    if permission not in principal.permissions:
        raise ForbiddenError(f"role {principal.role!r} lacks permission {permission!r}")
    return principal


def endpoint(
    rule: str,
    method: str,
    permission: str | None,
    summary: str,
    *,
    tag: str,
    params: list[Param] | None = None,
    body: dict[str, Any] | None = None,
    response: dict[str, Any] | None = None,
    status: int = 200,
    also: dict[int, tuple[str, dict[str, Any] | None]] | None = None,
    links: dict[str, tuple[str, dict[str, str]]] | None = None,
    body_required: bool = True,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare and register an API endpoint (see the module docstring)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        spec = Endpoint(
            rule=rule,
            method=method,
            permission=permission,
            summary=summary,
            tag=tag,
            params=list(params or []),
            body=closed(body) if body is not None else None,
            response=response,
            status=status,
            name=view.__name__,
            also=dict(also or {}),
            links=dict(links or {}),
            body_required=body_required,
        )
        for p in spec.path_params() + spec.other_params():
            VALIDATOR.lint(p.schema, f"{rule} {p.name}")
        if spec.body is not None:
            VALIDATOR.lint(spec.body, f"{method} {rule} body")
        ENDPOINTS.append(spec)

        @functools.wraps(view)
        def wrapper(**path: Any) -> Response:
            readonly = method == "GET"
            db = database()
            try:
                principal = _principal(db, permission)
                # Checked before a session opens: a refused request never holds the database.
                values = _param_values(spec, path)
                body = _checked_body(spec)
            except ServiceError as err:
                return _json_error(err)
            session = db.new_session(readonly=readonly)
            try:
                if principal is not None and not readonly:
                    auth.touch(session, principal)
                ctx = Ctx(session=session, principal=principal, body=body, params=values)
                out = view(ctx, **{name: values[name] for name in path})
                payload, code = out if isinstance(out, tuple) else (out, status)
                if readonly:
                    session.rollback()
                else:
                    session.commit()
                return _json(payload, code)
            except ServiceError as err:
                session.rollback()
                return _json_error(err)
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()

        flask_rule = _INT_RULE.sub(r"<digits:\1>", rule)
        bp.add_url_rule(flask_rule, endpoint=view.__name__, view_func=wrapper, methods=[method])
        return view

    return decorate


def require(body: dict[str, Any], name: str, kind: type | tuple[type, ...] = object) -> Any:
    """A required body field of the given type; errors name the field."""
    if name not in body or body[name] is None:
        raise InvalidError(f"{name} is required", name)
    value = body[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise InvalidError(f"{name} has the wrong type ({type(value).__name__})", name)
    return value


def reject_unknown(body: dict[str, Any], known: set[str]) -> None:
    """Unknown body fields are an error naming the field."""
    for name in body:
        if name not in known:
            raise InvalidError(f"unknown field {name!r}; known: {', '.join(sorted(known))}", name)


# Register the views (each module adds its endpoints with @endpoint).
from cloud.web.api import data, money, openapi, operations, people, places, tokens  # noqa: E402

__all__ = [
    "ENDPOINTS",
    "PREFIX",
    "Ctx",
    "Param",
    "bp",
    "data",
    "money",
    "openapi",
    "operations",
    "people",
    "places",
    "tokens",
]
