"""Tenants on the phone site (issue 12): how a tenant signs in. A tenant is who holds the phone
on file for an open account with a meter in a unit; the row here is keyed by what they type
(site, 户号, phone) and carries the one-time code (salted hash only), the send rate, the wrong
tries and the pause they cause, and the session epoch (``cloud.access.tenants``)."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud.models.base import Base, now_ts


class TenantLogin(Base):
    __tablename__ = "tenant_logins"
    __table_args__ = (UniqueConstraint("site_id", "unit_number", "phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    unit_number: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    code_salt: Mapped[str] = mapped_column(String(32), default="", server_default="")
    code_hash: Mapped[str] = mapped_column(String(64), default="", server_default="")
    code_expires_ts: Mapped[int | None]
    code_sent_ts: Mapped[int | None]
    sent_day: Mapped[str] = mapped_column(String(10), default="", server_default="")
    sent_that_day: Mapped[int] = mapped_column(default=0, server_default="0")
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    paused_until_ts: Mapped[int | None]
    session_epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    last_login_ts: Mapped[int | None]
    created_ts: Mapped[int] = mapped_column(default=now_ts)
