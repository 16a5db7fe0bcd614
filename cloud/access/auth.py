"""Operators, roles, named permissions (F05, F06) and API bearer tokens.

A token is ``gv_`` + 43 random URL-safe characters, shown once when made; the database keeps
only its SHA-256 (a token is high-entropy, so a fast hash is enough) and an 8-character prefix
to tell tokens apart. Passwords use werkzeug's salted scrypt hash.

Roles are built in (``ROLES``) and created by ``ensure_roles`` (``gridvend cloud init-db``).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from cloud.access import tokens
from cloud.audit import Actor, record
from cloud.errors import ConflictError, InvalidError, NotFoundError, UnauthorizedError
from cloud.models import ApiToken, Operator, Permission, Role, now_ts
from cloud.values import check_int, check_line

PERMISSIONS: dict[str, str] = {
    "meters.read": "see meters, collectors, commands and tariffs",
    "meters.command": "send commands to meters (trip, keep power, dispatch, batch)",
    "accounts.read": "see accounts and settlements",
    "accounts.manage": "open accounts, add meters, close accounts",
    "sales.read": "see sales and refunds",
    "sales.sell": "sell credit",
    "sales.refund": "refund credit",
    "sales.reverse": "reverse (correct) a sale",
    "readings.read": "see reading history",
    "alarms.read": "see alarms",
    "alarms.clear": "clear alarms by hand",
    "reports.read": "see reports",
    "tariffs.manage": "add tariff versions",
    "settings.manage": "change a site's default parameters (F13)",
    "operators.manage": "add operators and tokens",
    "audit.read": "see the operation log",
    "park.manage": "add and edit buildings, units, collectors and meters (and import them)",
    "payments.read": "see online payments and the daily reconciliation with the providers",
    "payments.manage": "re-run a reconciliation and resolve its cases",
}
_READ = ("meters.read", "accounts.read", "sales.read", "readings.read", "alarms.read")
ROLES: dict[str, tuple[str, ...]] = {
    "admin": tuple(PERMISSIONS),
    "supervisor": (
        *_READ,
        "reports.read",
        "accounts.manage",
        "sales.sell",
        "sales.refund",
        "sales.reverse",
        "meters.command",
        "alarms.clear",
        "settings.manage",
        "audit.read",
        "payments.read",
        "payments.manage",
    ),
    "cashier": (
        *_READ,
        "reports.read",
        "accounts.manage",
        "sales.sell",
        "sales.refund",
        "payments.read",
    ),
    "operator": (*_READ, "reports.read", "meters.command", "alarms.clear", "tariffs.manage"),
    "viewer": (*_READ, "reports.read", "payments.read"),
}
TOKEN_PREFIX = "gv_"
# How stale a token's last_used_ts may get before a request refreshes it (saves a write per
# request).
LAST_USED_GRANULARITY_S = 300


@dataclass
class Principal:
    """Who a request acts as."""

    operator_id: int
    username: str
    role: str
    permissions: frozenset[str]
    token_id: int
    expires_ts: int | None = None
    last_used_ts: int | None = None

    @property
    def actor(self) -> Actor:
        return Actor(f"operator:{self.username}", self.operator_id)


def ensure_roles(session: Session) -> None:
    """Create the named permissions and built-in roles that are missing (idempotent)."""
    perms = {p.name: p for p in session.scalars(select(Permission))}
    for name, text in PERMISSIONS.items():
        if name not in perms:
            perms[name] = Permission(name=name, description=text)
            session.add(perms[name])
    roles = {r.name: r for r in session.scalars(select(Role))}
    for name, granted in ROLES.items():
        role = roles.get(name)
        if role is None:
            role = Role(name=name, description=f"built-in role {name}")
            session.add(role)
        have = {p.name for p in role.permissions}
        for perm in granted:
            if perm not in have:
                role.permissions.append(perms[perm])
    session.flush()


def check_username(value: Any) -> str:
    if not isinstance(value, str) or not 2 <= len(value) <= 64 or not value.isprintable():
        raise InvalidError("username must be 2–64 printable characters", "username")
    if " " in value:
        raise InvalidError("username must not contain spaces", "username")
    return value


def create_operator(
    session: Session,
    username: str,
    password: str,
    role: str,
    actor: Actor,
    *,
    display_name: str = "",
) -> Operator:
    """Add an operator with a role from ``ROLES``; the password needs 8+ characters."""
    ensure_roles(session)
    username = check_username(username)
    if not isinstance(password, str) or len(password) < 8:
        raise InvalidError("password must have at least 8 characters", "password")
    found = session.scalars(select(Role).where(Role.name == role)).first()
    if found is None:
        raise InvalidError(f"role must be one of {', '.join(ROLES)}; got {role!r}", "role")
    if session.scalars(select(Operator.id).where(Operator.username == username)).first():
        raise ConflictError(f"operator {username!r} already exists")
    op = Operator(
        username=username,
        display_name=display_name or username,
        password_hash=generate_password_hash(password),
        role_id=found.id,
        active=True,
        created_ts=now_ts(),
    )
    session.add(op)
    session.flush()
    record(
        session,
        actor,
        "operator.create",
        "operator",
        op.id,
        after={"username": username, "role": role},
    )
    return op


def check_password(session: Session, username: str, password: str) -> Operator:
    """The active operator with this username and password, or ``UnauthorizedError``."""
    op = session.scalars(select(Operator).where(Operator.username == username)).first()
    if op is None or not op.active or not check_password_hash(op.password_hash, password):
        raise UnauthorizedError("wrong username or password")
    return op


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session,
    username: str,
    actor: Actor,
    *,
    name: str = "",
    token: str | None = None,
    expires_ts: int | None = None,
) -> tuple[ApiToken, str]:
    """Make an API token for ``username``; returns the row and the secret (shown once).
    ``token`` fixes the secret (the demo's ``--api-token``); it needs 20+ characters."""
    op = session.scalars(select(Operator).where(Operator.username == username)).first()
    if op is None:
        raise NotFoundError(f"operator {username!r} does not exist; create it first", "operator")
    name = check_line(name or None, "name", tokens.TOKEN_NAME_MAX, required=False) or ""
    if expires_ts is not None:
        check_int(expires_ts, "expires_ts", 0)
    if token is None:
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    elif not isinstance(token, str) or len(token) < 20 or not token.isascii() or " " in token:
        raise InvalidError("a fixed token needs at least 20 ASCII characters, no spaces", "token")
    digest = _digest(token)
    if session.scalars(select(ApiToken.id).where(ApiToken.token_hash == digest)).first():
        raise ConflictError("that token already exists")
    row = ApiToken(
        operator_id=op.id,
        name=name,
        token_hash=digest,
        prefix=token[:8],
        created_ts=now_ts(),
        expires_ts=expires_ts,
    )
    session.add(row)
    session.flush()
    record(
        session, actor, "token.create", "operator", op.id, after={"token": row.prefix, "name": name}
    )
    return row, token


def revoke_token(
    session: Session, token_id: int, actor: Actor, cache: PrincipalCache | None = None
) -> ApiToken:
    """Revoke a token (and drop it from this process's principal cache). Revoking a revoked
    token changes nothing (it keeps its first revocation time)."""
    row = tokens.get_token(session, token_id)
    if row.revoked_ts is None:
        row.revoked_ts = now_ts()
        record(session, actor, "token.revoke", "token", token_id)
    if cache is not None:
        cache.forget(row.token_hash)
    return row


class PrincipalCache:
    """Principals by token digest, kept ``ttl_s`` seconds so a request does not spend four
    queries on who it is. A token revoked (or an operator disabled) elsewhere keeps working in
    a process that cached it for at most ``ttl_s``; ``revoke_token`` in the same process clears
    it at once (``forget``)."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 1024) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Principal]] = {}

    def get(self, digest: str) -> Principal | None:
        with self._lock:
            item = self._items.get(digest)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._items) >= self.max_entries:
                self._items.clear()
            self._items[digest] = (time.monotonic() + self.ttl_s, principal)

    def forget(self, digest: str | None = None) -> None:
        with self._lock:
            if digest is None:
                self._items.clear()
            else:
                self._items.pop(digest, None)


def authenticate(
    session: Session,
    authorization: str | None,
    *,
    cache: PrincipalCache | None = None,
    now: int | None = None,
) -> Principal:
    """The principal of an ``Authorization: Bearer <token>`` header, or ``UnauthorizedError``
    saying what is wrong."""
    if not authorization:
        raise UnauthorizedError(
            "missing Authorization header; send 'Authorization: Bearer <token>' "
            "(make one with `gridvend cloud create-token`)"
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("the Authorization header must be 'Bearer <token>'")
    digest = _digest(token.strip())
    stamp = now if now is not None else now_ts()
    if cache is not None:
        hit = cache.get(digest)
        if hit is not None and (hit.expires_ts is None or hit.expires_ts > stamp):
            return hit
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    if row is None:
        raise UnauthorizedError("unknown API token")
    if row.revoked_ts is not None:
        raise UnauthorizedError("this API token was revoked")
    if row.expires_ts is not None and row.expires_ts <= stamp:
        raise UnauthorizedError("this API token has expired")
    op = row.operator
    if not op.active:
        raise UnauthorizedError(f"operator {op.username} is disabled")
    principal = Principal(
        operator_id=op.id,
        username=op.username,
        role=op.role.name,
        permissions=frozenset(p.name for p in op.role.permissions),
        token_id=row.id,
        expires_ts=row.expires_ts,
        last_used_ts=row.last_used_ts,
    )
    if cache is not None:
        cache.put(digest, principal)
    return principal


def touch(session: Session, principal: Principal, now: int | None = None) -> bool:
    """Record the token's use when ``last_used_ts`` is staler than ``LAST_USED_GRANULARITY_S``
    (one UPDATE at most every few minutes per token). Returns whether it wrote."""
    stamp = now if now is not None else now_ts()
    if (principal.last_used_ts or 0) >= stamp - LAST_USED_GRANULARITY_S:
        return False
    session.execute(
        update(ApiToken).where(ApiToken.id == principal.token_id).values(last_used_ts=stamp)
    )
    principal.last_used_ts = stamp
    return True
