"""The REST API, ``/api/v1``: JSON in and out, bearer tokens, permissions by role, errors as
``{"error": {"code", "message", "field"}}`` with a 4xx that says what to fix.

Every endpoint is declared with ``@endpoint(...)``: the rule, the method, the permission it
needs, and what the OpenAPI document (``/api/v1/openapi.json``, built from these declarations
by ``cloud.web.api.openapi``) says about it. The wrapper authenticates first (so a request without a
valid token gets 401 whatever else is wrong with it), then checks the permission (403), then
opens a database session for the request — read-only for GET — and commits when the view
returns. Principals are cached per token for ``PrincipalCache.ttl_s`` (30 s). Views receive a ``Ctx`` and their path parameters and return ``(payload, status)`` or a
payload (200).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Response, current_app, request
from sqlalchemy.orm import Session

from cloud.access import auth
from cloud.db import Database
from cloud.errors import ForbiddenError, InvalidError, ServiceError
from cloud.web.errors import service_error_response

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)


@dataclass
class Param:
    """A query parameter or header, for parsing docs and the OpenAPI document."""

    name: str
    schema: dict[str, Any]
    description: str
    required: bool = False
    where: str = "query"


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


ENDPOINTS: list[Endpoint] = []


@dataclass
class Ctx:
    """What a view gets: the session, who is asking, the JSON body and the query args."""

    session: Session
    principal: auth.Principal | None
    body: dict[str, Any]

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
        if raw is None:
            return None
        if raw.lstrip("-").isdigit():
            return int(raw)
        try:
            when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidError(
                f"{name} must be epoch seconds or an ISO 8601 time like 2026-01-31T08:00:00Z; "
                f"got {raw!r}",
                name,
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return int(when.timestamp())

    def date_arg(self, name: str, default: dt.date | None = None) -> dt.date | None:
        raw = self.arg(name)
        if raw is None:
            return default
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise InvalidError(f"{name} must be a date YYYY-MM-DD, got {raw!r}", name) from None


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


def _body() -> dict[str, Any]:
    if request.method == "GET" or not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise ServiceError("send the body as JSON with Content-Type: application/json")
    try:
        data = json.loads(request.get_data(cache=True))
    except ValueError as exc:
        raise ServiceError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ServiceError("the body must be a JSON object")
    return data


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
            body=body,
            response=response,
            status=status,
            name=view.__name__,
        )
        ENDPOINTS.append(spec)

        @functools.wraps(view)
        def wrapper(**path: Any) -> Response:
            readonly = method == "GET"
            db = database()
            try:
                principal = _principal(db, permission)
            except ServiceError as err:
                return _json_error(err)
            session = db.new_session(readonly=readonly)
            try:
                if principal is not None and not readonly:
                    auth.touch(session, principal)
                ctx = Ctx(session=session, principal=principal, body=_body())
                out = view(ctx, **path)
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

        bp.add_url_rule(rule, endpoint=view.__name__, view_func=wrapper, methods=[method])
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
from cloud.web.api import data, money, openapi, operations  # noqa: E402

__all__ = ["ENDPOINTS", "PREFIX", "Ctx", "Param", "bp", "data", "money", "openapi", "operations"]
