"""Operators, roles with named permissions (F05/F06), API tokens (only a hash is stored), and
the append-only audit log (F07): who, when, what, before/after."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, ForeignKey, String, Table
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloud.models.base import Base, BigId, now_ts

if TYPE_CHECKING:
    from cloud.models.place import Building

role_permissions = Table(
    "role_permissions",
    Base.metadata,
    Column("role_id", ForeignKey("roles.id"), primary_key=True),
    Column("permission_id", ForeignKey("permissions.id"), primary_key=True),
)


class Permission(Base):
    __tablename__ = "permissions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")


class Role(Base):
    __tablename__ = "roles"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")

    permissions: Mapped[list[Permission]] = relationship(secondary=role_permissions)


operator_buildings = Table(
    "operator_buildings",
    Base.metadata,
    Column("operator_id", ForeignKey("operators.id"), primary_key=True),
    Column("building_id", ForeignKey("buildings.id"), primary_key=True),
)


class Operator(Base):
    """An office login. ``buildings`` is the data scope (none = the whole park); the login
    lockout counts ``failed_logins`` up to ``locked_until_ts``; ``session_epoch`` is written
    into each session cookie and bumped by logout, password change and disabling, so older
    cookies stop working."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(300))
    role_id: Mapped[int] = mapped_column(ForeignKey("roles.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_ts: Mapped[int] = mapped_column(default=now_ts)
    last_login_ts: Mapped[int | None]
    phone: Mapped[str] = mapped_column(String(32), default="", server_default="")
    failed_logins: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until_ts: Mapped[int | None]
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")

    role: Mapped[Role] = relationship()
    buildings: Mapped[list[Building]] = relationship(secondary=operator_buildings)


class ApiToken(Base):
    """A bearer token. The secret is shown once at creation; only its SHA-256 is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_ts: Mapped[int] = mapped_column(default=now_ts)
    last_used_ts: Mapped[int | None]
    expires_ts: Mapped[int | None]
    revoked_ts: Mapped[int | None]

    operator: Mapped[Operator] = relationship()


class AuditEntry(Base):
    """One state-changing action. Rows are only ever inserted."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ts: Mapped[int] = mapped_column(default=now_ts, index=True)
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("operators.id"))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64), index=True)
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
