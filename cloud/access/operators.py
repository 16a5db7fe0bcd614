"""Office sign-in and the management of operators and roles (F05, F06): the service functions
both the office pages and the REST API call.

Sign-in locks an operator for ``LOCK_FOR_S`` after ``LOCK_AFTER`` wrong passwords in a row
(``AccountLocked`` says until when). A session cookie carries the operator's
``session_epoch``; logout, a password change, a reset and disabling bump it, so every older
cookie stops working at once. Built-in roles (``auth.ROLES``) stay as shipped; custom roles
are any set of the named permissions (``auth.PERMISSIONS``) and can be edited or deleted while
no operator holds them. Every change writes the audit log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from cloud.access import auth
from cloud.audit import Actor, record
from cloud.errors import ConflictError, InvalidError, NotFoundError, UnauthorizedError
from cloud.models import Building, Operator, Permission, Role, now_ts

LOCK_AFTER = 5
LOCK_FOR_S = 15 * 60
MIN_PASSWORD = 8
# check_password_hash on this when the username is unknown, so both answers take as long.
_DUMMY_HASH = generate_password_hash("gridvend-no-such-operator")


class AccountLocked(UnauthorizedError):
    """Too many wrong passwords: no password is checked until ``until_ts``."""

    code = "locked"

    def __init__(self, until_ts: int) -> None:
        minutes = max(1, -(-(until_ts - now_ts()) // 60))
        super().__init__(
            f"too many wrong passwords: this login is locked for {minutes} more minute(s)"
        )
        self.until_ts = until_ts


def attempt_login(
    session: Session, username: str, password: str, *, ip: str = "", now: int | None = None
) -> Operator:
    """The operator for a right password, else ``UnauthorizedError`` (``AccountLocked`` once
    locked). The failure count is written either way: commit even when this raises."""
    stamp = now if now is not None else now_ts()
    op = session.scalars(select(Operator).where(Operator.username == username)).first()
    if op is None:
        check_password_hash(_DUMMY_HASH, password or "")
        raise UnauthorizedError("wrong username or password")
    if op.locked_until_ts is not None and op.locked_until_ts > stamp:
        raise AccountLocked(op.locked_until_ts)
    if not check_password_hash(op.password_hash, password or ""):
        op.failed_logins = (op.failed_logins or 0) + 1
        if op.failed_logins >= LOCK_AFTER:
            op.locked_until_ts = stamp + LOCK_FOR_S
            op.failed_logins = 0
            record(session, Actor(f"login:{ip}"), "operator.locked", "operator", op.id, now=stamp)
            raise AccountLocked(op.locked_until_ts)
        raise UnauthorizedError("wrong username or password")
    if not op.active:
        raise UnauthorizedError(f"operator {op.username} is disabled; ask an administrator")
    op.failed_logins, op.locked_until_ts, op.last_login_ts = 0, None, stamp
    record(session, actor_of(op), "operator.login", "operator", op.id, after={"ip": ip})
    return op


def actor_of(op: Operator) -> Actor:
    return Actor(f"operator:{op.username}", op.id)


def label(username: str | None, display_name: str | None) -> str:
    """How lists and reports name an operator: 'cashier1 Wang Fang', or the username once when the
    display name is empty or the same (it defaults to the username)."""
    user = (username or "").strip()
    name = (display_name or "").strip()
    return user if name in ("", user) else f"{user} {name}".strip()


def permissions_of(op: Operator) -> frozenset[str]:
    return frozenset(p.name for p in op.role.permissions)


def logout(session: Session, op: Operator) -> None:
    """End every session of ``op`` (their cookies carry the old epoch)."""
    op.session_epoch = (op.session_epoch or 0) + 1
    record(session, actor_of(op), "operator.logout", "operator", op.id)


def _check_password(value: Any, field: str) -> str:
    if not isinstance(value, str) or len(value) < MIN_PASSWORD:
        raise InvalidError(f"the password needs at least {MIN_PASSWORD} characters", field)
    return value


def change_password(session: Session, op: Operator, old: str, new: str) -> None:
    """An operator changes their own password (the old one is required)."""
    if not check_password_hash(op.password_hash, old or ""):
        raise InvalidError("the current password is wrong", "old_password")
    op.password_hash = generate_password_hash(_check_password(new, "new_password"))
    op.session_epoch = (op.session_epoch or 0) + 1
    record(session, actor_of(op), "operator.password", "operator", op.id)


def get(session: Session, operator_id: int) -> Operator:
    op = session.get(Operator, operator_id)
    if op is None:
        raise NotFoundError(f"operator {operator_id} does not exist")
    return op


def to_dict(op: Operator) -> dict[str, Any]:
    return {
        "id": op.id,
        "username": op.username,
        "display_name": op.display_name,
        "phone": op.phone,
        "role": op.role.name,
        "active": op.active,
        "buildings": sorted(b.id for b in op.buildings),
        "last_login_ts": op.last_login_ts,
        "locked_until_ts": op.locked_until_ts,
    }


def _buildings(session: Session, ids: list[int]) -> list[Building]:
    found = list(session.scalars(select(Building).where(Building.id.in_(ids)))) if ids else []
    missing = set(ids) - {b.id for b in found}
    if missing:
        # A reference in the body to a record the park does not have: the request is well-formed
        # and the park's state refuses it, a 409 naming the field (as for configured limits); a
        # 404 would say the operator in the URL is missing.
        raise ConflictError(f"building {min(missing)} does not exist", "buildings")
    return sorted(found, key=lambda b: b.id)


def _role(session: Session, name: str) -> Role:
    role = session.scalars(select(Role).where(Role.name == name)).first()
    if role is None:
        raise ConflictError(f"role {name!r} does not exist", "role")  # as a building: 409
    return role


def create(
    session: Session,
    actor: Actor,
    *,
    username: str,
    password: str,
    role: str,
    display_name: str = "",
    phone: str = "",
    buildings: list[int] | None = None,
) -> Operator:
    """Add an operator (any role, built-in or custom) with a building scope."""
    _role(session, role)
    op = auth.create_operator(session, username, password, role, actor, display_name=display_name)
    op.phone = _phone(phone)
    op.buildings = _buildings(session, buildings or [])
    session.flush()
    return op


def _phone(value: Any) -> str:
    text = (value or "").strip() if isinstance(value, str) else ""
    if (text and not all(c.isdigit() or c in "+- " for c in text)) or len(text) > 32:
        raise InvalidError("a phone number has digits, spaces, + and - only", "phone")
    return text


def update(
    session: Session,
    operator_id: int,
    actor: Actor,
    *,
    display_name: str | None = None,
    phone: str | None = None,
    role: str | None = None,
    active: bool | None = None,
    buildings: list[int] | None = None,
) -> Operator:
    """Edit an operator. Disabling ends their sessions; nobody disables themself."""
    op = get(session, operator_id)
    before = to_dict(op)
    if display_name is not None:
        name = display_name.strip()
        if not name or len(name) > 200:
            raise InvalidError("the name must be 1–200 characters", "display_name")
        op.display_name = name
    if phone is not None:
        op.phone = _phone(phone)
    if role is not None:
        op.role = _role(session, role)
    if buildings is not None:
        op.buildings = _buildings(session, buildings)
    if active is not None and active != op.active:
        if not active and actor.operator_id == op.id:
            raise ConflictError("you cannot disable your own login", "active")
        op.active = active
        op.session_epoch = (op.session_epoch or 0) + 1
    session.flush()
    record(session, actor, "operator.update", "operator", op.id, before, to_dict(op))
    return op


def reset_password(session: Session, operator_id: int, password: str, actor: Actor) -> Operator:
    """Set a new password for an operator (and lift a lockout); their sessions end."""
    op = get(session, operator_id)
    op.password_hash = generate_password_hash(_check_password(password, "password"))
    op.failed_logins, op.locked_until_ts = 0, None
    op.session_epoch = (op.session_epoch or 0) + 1
    record(session, actor, "operator.reset_password", "operator", op.id)
    return op


# -- roles -------------------------------------------------------------------------------------


def is_builtin(role: Role) -> bool:
    return role.name in auth.ROLES


def role_to_dict(role: Role) -> dict[str, Any]:
    return {
        "id": role.id,
        "name": role.name,
        "description": role.description,
        "builtin": is_builtin(role),
        "permissions": sorted(p.name for p in role.permissions),
    }


def get_role(session: Session, role_id: int) -> Role:
    role = session.get(Role, role_id)
    if role is None:
        raise NotFoundError(f"role {role_id} does not exist")
    return role


def _permissions(session: Session, names: list[str]) -> list[Permission]:
    auth.ensure_roles(session)
    unknown = sorted(set(names) - set(auth.PERMISSIONS))
    if unknown:
        raise InvalidError(f"unknown permission {unknown[0]!r}", "permissions")
    if not names:
        raise InvalidError("a role needs at least one permission", "permissions")
    return list(session.scalars(select(Permission).where(Permission.name.in_(names))))


def _role_name(value: Any) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not 2 <= len(name) <= 64:
        raise InvalidError("the role name must be 2–64 characters", "name")
    return name


def create_role(
    session: Session, actor: Actor, *, name: str, description: str, permissions: list[str]
) -> Role:
    name = _role_name(name)
    if session.scalars(select(Role.id).where(Role.name == name)).first() is not None:
        raise ConflictError(f"a role named {name!r} already exists", "name")
    role = Role(name=name, description=(description or "").strip()[:200])
    role.permissions = _permissions(session, permissions)
    session.add(role)
    session.flush()
    record(session, actor, "role.create", "role", role.id, after=role_to_dict(role))
    return role


def update_role(
    session: Session,
    role_id: int,
    actor: Actor,
    *,
    name: str | None = None,
    description: str | None = None,
    permissions: list[str] | None = None,
) -> Role:
    role = get_role(session, role_id)
    if is_builtin(role):
        raise ConflictError(f"{role.name} is a built-in role; copy it into a new role instead")
    before = role_to_dict(role)
    if name is not None:
        name = _role_name(name)
        clash = session.scalars(select(Role.id).where(Role.name == name, Role.id != role.id))
        if clash.first() is not None:
            raise ConflictError(f"a role named {name!r} already exists", "name")
        role.name = name
    if description is not None:
        role.description = description.strip()[:200]
    if permissions is not None:
        role.permissions = _permissions(session, permissions)
    session.flush()
    record(session, actor, "role.update", "role", role.id, before, role_to_dict(role))
    return role


def delete_role(session: Session, role_id: int, actor: Actor) -> None:
    role = get_role(session, role_id)
    if is_builtin(role):
        raise ConflictError(f"{role.name} is a built-in role and stays")
    holders = session.scalar(select(func.count()).where(Operator.role_id == role.id)) or 0
    if holders:
        raise ConflictError(f"{holders} operator(s) hold role {role.name}; give them another first")
    before = role_to_dict(role)
    session.delete(role)
    record(session, actor, "role.delete", "role", role_id, before=before)
