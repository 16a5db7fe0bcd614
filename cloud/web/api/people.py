"""Operators and roles over the API (F05, F06): the same service functions as the office's
登录管理 screens (``cloud.access.operators``). Passwords are write-only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cloud.access import operators
from cloud.access.auth import PERMISSIONS
from cloud.errors import InvalidError
from cloud.models import Operator, Role
from cloud.web.api import Ctx, endpoint, reject_unknown, require
from cloud.web.api.schemas import (
    BOOL,
    INT,
    OPT_INT,
    RECORD_ID,
    STR,
    array,
    enum,
    line,
    obj,
    opt_line,
)

MANAGE = "operators.manage"
OPERATOR = obj(
    {
        "id": INT,
        "username": STR,
        "display_name": STR,
        "phone": STR,
        "role": STR,
        "active": BOOL,
        "buildings": array(INT),
        "last_login_ts": OPT_INT,
        "locked_until_ts": OPT_INT,
    }
)
ROLE = obj({"id": INT, "name": STR, "description": STR, "builtin": BOOL, "permissions": array(STR)})
_OPERATOR_FIELDS = {"display_name", "phone", "role", "active", "buildings"}
# What the service functions accept, as the API publishes and enforces it (issue 9).
USERNAME = {
    "type": "string",
    "pattern": "^[!-~]{2,64}$",
    "x-rule": "2–64 printable ASCII characters, no spaces",
}
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 200}
PHONE_TEXT = {
    "type": "string",
    "maxLength": 32,
    "pattern": "^[0-9+ -]*$",
    "x-rule": "digits, spaces, + and - (or empty)",
}
ROLE_NAME = {**line(64), "minLength": 2}
BUILDINGS = array(RECORD_ID, max_items=1000)
PERMISSION_NAMES = array(enum(*PERMISSIONS), min_items=1, max_items=len(PERMISSIONS))


def _ids(value: Any) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise InvalidError("buildings must be a list of building ids", "buildings")
    return value


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidError("permissions must be a list of permission names", "permissions")
    return value


@endpoint(
    "/operators",
    "GET",
    MANAGE,
    "Operators (no passwords)",
    tag="access",
    response=obj({"operators": array(OPERATOR)}),
)
def list_operators(ctx: Ctx) -> Any:
    rows = ctx.session.scalars(select(Operator).order_by(Operator.id))
    return {"operators": [operators.to_dict(op) for op in rows]}


@endpoint(
    "/operators",
    "POST",
    MANAGE,
    "Add an operator with a role and a building scope (none: the whole park)",
    tag="access",
    body=obj(
        {
            "username": USERNAME,
            "password": PASSWORD,
            "role": line(64),
            "display_name": opt_line(200),
            "phone": PHONE_TEXT,
            "buildings": BUILDINGS,
        },
        ["username", "password", "role"],
    ),
    response=OPERATOR,
    status=201,
)
def create_operator(ctx: Ctx) -> Any:
    body = ctx.body
    reject_unknown(body, {"username", "password", "role", "display_name", "phone", "buildings"})
    op = operators.create(
        ctx.session,
        ctx.actor,
        username=require(body, "username", str),
        password=require(body, "password", str),
        role=require(body, "role", str),
        display_name=body.get("display_name") or "",
        phone=body.get("phone") or "",
        buildings=_ids(body.get("buildings", [])),
    )
    return operators.to_dict(op), 201


@endpoint(
    "/operators/<int:operator_id>",
    "PATCH",
    MANAGE,
    "Edit an operator: name, phone, role, enabled, building scope (disabling ends sessions)",
    tag="access",
    body=obj(
        {
            "display_name": line(200),
            "phone": PHONE_TEXT,
            "role": line(64),
            "active": BOOL,
            "buildings": BUILDINGS,
        }
    ),
    response=OPERATOR,
)
def update_operator(ctx: Ctx, operator_id: int) -> Any:
    body = ctx.body
    reject_unknown(body, _OPERATOR_FIELDS)
    active = body.get("active")
    if active is not None and not isinstance(active, bool):
        raise InvalidError("active must be true or false", "active")
    op = operators.update(
        ctx.session,
        operator_id,
        ctx.actor,
        display_name=body.get("display_name"),
        phone=body.get("phone"),
        role=body.get("role"),
        active=active,
        buildings=_ids(body["buildings"]) if "buildings" in body else None,
    )
    return operators.to_dict(op)


@endpoint(
    "/operators/<int:operator_id>/password",
    "POST",
    MANAGE,
    "Reset an operator's password (lifts a lockout, ends their sessions)",
    tag="access",
    body=obj({"password": PASSWORD}, ["password"]),
    response=OPERATOR,
)
def reset_password(ctx: Ctx, operator_id: int) -> Any:
    reject_unknown(ctx.body, {"password"})
    op = operators.reset_password(
        ctx.session, operator_id, require(ctx.body, "password", str), ctx.actor
    )
    return operators.to_dict(op)


@endpoint(
    "/roles",
    "GET",
    MANAGE,
    "Roles: built-in and custom, with their permissions",
    tag="access",
    response=obj({"roles": array(ROLE)}),
)
def list_roles(ctx: Ctx) -> Any:
    rows = ctx.session.scalars(select(Role).order_by(Role.id))
    return {"roles": [operators.role_to_dict(r) for r in rows]}


@endpoint(
    "/roles",
    "POST",
    MANAGE,
    "Add a custom role: a set of the named permissions",
    tag="access",
    body=obj(
        {"name": ROLE_NAME, "description": opt_line(200), "permissions": PERMISSION_NAMES},
        ["name", "permissions"],
    ),
    response=ROLE,
    status=201,
)
def create_role(ctx: Ctx) -> Any:
    reject_unknown(ctx.body, {"name", "description", "permissions"})
    role = operators.create_role(
        ctx.session,
        ctx.actor,
        name=require(ctx.body, "name", str),
        description=ctx.body.get("description") or "",
        permissions=_names(ctx.body.get("permissions")),
    )
    return operators.role_to_dict(role), 201


@endpoint(
    "/roles/<int:role_id>",
    "PATCH",
    MANAGE,
    "Edit a custom role (built-in roles stay as shipped: 409)",
    tag="access",
    body=obj({"name": ROLE_NAME, "description": opt_line(200), "permissions": PERMISSION_NAMES}),
    response=ROLE,
)
def update_role(ctx: Ctx, role_id: int) -> Any:
    reject_unknown(ctx.body, {"name", "description", "permissions"})
    perms = ctx.body.get("permissions")
    role = operators.update_role(
        ctx.session,
        role_id,
        ctx.actor,
        name=ctx.body.get("name"),
        description=ctx.body.get("description"),
        permissions=_names(perms) if perms is not None else None,
    )
    return operators.role_to_dict(role)


@endpoint(
    "/roles/<int:role_id>",
    "DELETE",
    MANAGE,
    "Delete a custom role no operator holds",
    tag="access",
    response=obj({"deleted": INT}),
)
def delete_role(ctx: Ctx, role_id: int) -> Any:
    operators.delete_role(ctx.session, role_id, ctx.actor)
    return {"deleted": role_id}
