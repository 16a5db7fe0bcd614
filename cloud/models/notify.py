"""Notifications (issue 13, migration 0008_notify): the outbox, the references delivery reports
are matched on, templates, tenants' numbers, the notifier's cursors and channel health.

An outbox row's ``state`` follows ``cloud.notify.lifecycle``: queued → sending → sent →
delivered | failed. ``key`` is unique: the event it came from (``alarm:<id>``, ``sale:<id>`` …),
so a rescan or a resent uplink never makes a second text for the same event.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud.models.base import Base, BigId, now_ts


class OutboxMessage(Base):
    __tablename__ = "notify_outbox"
    __table_args__ = (
        Index("ix_notify_outbox_state_next_attempt_ts", "state", "next_attempt_ts"),
        Index("ix_notify_outbox_recipient_sent_ts", "recipient", "sent_ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    urgent: Mapped[bool] = mapped_column(default=True)
    site_id: Mapped[str | None] = mapped_column(String(64))
    meter_id: Mapped[str | None] = mapped_column(String(64), index=True)
    customer_id: Mapped[int | None] = mapped_column(index=True)
    recipient: Mapped[str] = mapped_column(String(32))
    lang: Mapped[str] = mapped_column(String(8), default="zh_CN")
    text: Mapped[str] = mapped_column(String(1000))
    params: Mapped[dict[str, Any] | None]
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    channel_attempts: Mapped[int] = mapped_column(default=0)
    channel: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(200))
    concat_ref: Mapped[int | None]
    parts: Mapped[int] = mapped_column(default=0)
    done_parts: Mapped[dict[str, Any] | None]
    uncertain: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(String(500))
    resends: Mapped[int] = mapped_column(default=0)
    source_ts: Mapped[int | None]
    created_ts: Mapped[int] = mapped_column(default=now_ts, index=True)
    next_attempt_ts: Mapped[int] = mapped_column(default=now_ts)
    sending_ts: Mapped[int | None]
    sent_ts: Mapped[int | None]
    delivered_ts: Mapped[int | None]
    finished_ts: Mapped[int | None]
    updated_ts: Mapped[int] = mapped_column(default=now_ts)


class OutboxRef(Base):
    """One segment's reference on a channel (the modem's TP-MR, a provider's id), which its
    delivery report names."""

    __tablename__ = "notify_refs"
    __table_args__ = (Index("ix_notify_refs_channel_ref", "channel", "ref"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("notify_outbox.id"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str] = mapped_column(String(200))
    seq: Mapped[int] = mapped_column(default=1)
    recipient: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(32))
    created_ts: Mapped[int] = mapped_column(default=now_ts)
    report_ts: Mapped[int | None]


class NotifyTemplate(Base):
    """A site's own wording of a message kind in one language (``site_id`` "" = every site);
    without one the built-in text of ``cloud.notify.templates`` is used."""

    __tablename__ = "notify_templates"
    __table_args__ = (UniqueConstraint("site_id", "kind", "lang"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    site_id: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(32))
    lang: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(String(1000))
    updated_ts: Mapped[int] = mapped_column(default=now_ts)
    updated_by: Mapped[str | None] = mapped_column(String(64))


class NotifyRecipient(Base):
    """A number a tenant wants texts at, with its language and, optionally, the kinds it takes
    (null: all). A tenant with none gets texts at ``Customer.phone`` in zh-CN."""

    __tablename__ = "notify_recipients"
    __table_args__ = (UniqueConstraint("customer_id", "phone"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    phone: Mapped[str] = mapped_column(String(32))
    lang: Mapped[str] = mapped_column(String(8), default="zh_CN")
    kinds: Mapped[list[Any] | None]
    active: Mapped[bool] = mapped_column(default=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created_ts: Mapped[int] = mapped_column(default=now_ts)


class NotifyCursor(Base):
    __tablename__ = "notify_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int]


class NotifyChannel(Base):
    """A channel's last health as the notifier saw it (the office reads it here)."""

    __tablename__ = "notify_channels"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    health: Mapped[dict[str, Any] | None]
    updated_ts: Mapped[int] = mapped_column(default=now_ts)
