"""Collectors (gateways), their buses, and meters with the cloud's mirror of each meter's state
and ledger; the per-meter purchase-number sequence (F39); the uplink inbox that makes applying an
envelope idempotent (B01)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloud.models.base import Base, BigId, money, now_ts

if TYPE_CHECKING:
    from cloud.models.place import Site

# How a collector's row is locked to act for it (its sequences, its owner, its window): FOR NO
# KEY UPDATE on PostgreSQL, never FOR UPDATE. FOR UPDATE also blocks every foreign-key check on
# the row (FOR KEY SHARE): a sale inserting its credit command waited for the bridge's lock on
# the collector while the bridge waited for the sale's meter row, a deadlock (a 500 to the
# cashier). NO KEY UPDATE still serialises the lockers among themselves. SQLite ignores it.
GATEWAY_LOCK: dict[str, Any] = {"key_share": True}


class Gateway(Base):
    """A collector (通讯管理机). Holds its keys (current and previous id, so a key rotation does
    not cut it off), its MQTT user, liveness, the durable downlink sequence reservation and the
    persisted uplink replay window (docs/protocol.md)."""

    __tablename__ = "gateways"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    floor_id: Mapped[int | None] = mapped_column(ForeignKey("floors.id"))
    key_id: Mapped[int] = mapped_column(default=1)
    key_hex: Mapped[str] = mapped_column(String(64))
    prev_key_id: Mapped[int | None]
    prev_key_hex: Mapped[str | None] = mapped_column(String(64))
    mqtt_username: Mapped[str] = mapped_column(String(64))
    online: Mapped[bool] = mapped_column(default=False)
    lost_contact: Mapped[bool] = mapped_column(default=False)
    status_ts: Mapped[int | None]
    last_heartbeat_ts: Mapped[int | None]
    last_hello_ts: Mapped[int | None]
    agent_version: Mapped[str | None] = mapped_column(String(64))
    config_hash: Mapped[str | None] = mapped_column(String(128))
    backlog: Mapped[int | None]
    uptime_s: Mapped[int | None]
    buses_health: Mapped[dict[str, Any] | None]
    # Downlink sequence numbers: [down_seq_next, down_seq_reserved) is the block reserved (and
    # committed) before any number of it is used; after a crash the bridge starts a new block.
    down_seq_next: Mapped[int] = mapped_column(default=1)
    down_seq_reserved: Mapped[int] = mapped_column(default=1)
    # envelope.ReplayWindow.to_dict() of the uplink direction.
    up_window: Mapped[dict[str, Any] | None]
    # The bridge that applies this collector's uplink and numbers its downlink (a
    # BridgeMember id; None: no bridge yet). Changed only under this row's lock; owner_epoch
    # counts the changes (docs/architecture.md "Several bridges").
    owner: Mapped[str | None] = mapped_column(String(128))
    owner_epoch: Mapped[int] = mapped_column(BigId, default=0)
    owner_ms: Mapped[int | None] = mapped_column(BigId)
    created_ts: Mapped[int] = mapped_column(default=now_ts)

    site: Mapped[Site] = relationship()
    buses: Mapped[list[Bus]] = relationship(back_populates="gateway")
    meters: Mapped[list[Meter]] = relationship(back_populates="gateway")


class Bus(Base):
    """An RS-485 line on a collector (one meter type per bus)."""

    __tablename__ = "buses"
    __table_args__ = (UniqueConstraint("gateway_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    protocol: Mapped[str | None] = mapped_column(String(32))

    gateway: Mapped[Gateway] = relationship(back_populates="buses")


class Meter(Base):
    """A meter and the cloud's mirror of it.

    Ledger mirror (docs/architecture.md "Where the truth lives"): ``balance == credits − refunds
    − charges``; credits = applied sales + transfers-in + settlement credits, refunds = applied
    refunds + reversals + settlement refunds, charges = Σ reading charges reported by the edge.
    The ``edge_*`` columns are the running totals the edge last reported, for the cross-check.
    ``archived_charges_micro_yuan`` is the part of ``charges`` whose readings were archived.
    """

    __tablename__ = "meters"
    __table_args__ = (UniqueConstraint("bus_id", "address"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), index=True)
    bus_id: Mapped[int] = mapped_column(ForeignKey("buses.id"), index=True)
    address: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), index=True)
    ct_ratio: Mapped[int] = mapped_column(default=1)
    pt_ratio: Mapped[int] = mapped_column(default=1)
    # False for plain metering instruments (F32): read, never vended or tripped.
    prepaid: Mapped[bool] = mapped_column(default=True)
    tariff_id: Mapped[str | None] = mapped_column(ForeignKey("tariffs.id"))
    price_override_micro_yuan_per_kwh: Mapped[int | None]
    alarm1_micro_yuan: Mapped[int | None]
    alarm2_micro_yuan: Mapped[int | None]
    hoarding_cap_micro_yuan: Mapped[int | None]
    overload_power_w: Mapped[int | None]
    # Every setting dispatched to the edge, merged (docs/architecture.md "Settings"): desired.
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # What the collector confirmed (applied settings commands, merged; null removes a value),
    # recorded from its results (cloud.uplink.results): a refused command never shows here.
    applied_settings: Mapped[dict[str, Any] | None]
    mode: Mapped[str] = mapped_column(String(16), default="prepaid")
    display_state: Mapped[str] = mapped_column(String(16), default="not_opened")
    relay: Mapped[str] = mapped_column(String(8), default="unknown")
    lost_contact: Mapped[bool] = mapped_column(default=False)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)

    balance_micro_yuan: Mapped[int] = money()
    credits_micro_yuan: Mapped[int] = money()
    refunds_micro_yuan: Mapped[int] = money()
    charges_micro_yuan: Mapped[int] = money()
    archived_charges_micro_yuan: Mapped[int] = money()
    purchase_count: Mapped[int] = mapped_column(default=0)
    last_applied_purchase_no: Mapped[int] = mapped_column(default=0)

    edge_balance_micro_yuan: Mapped[int | None]
    edge_credits_micro_yuan: Mapped[int | None]
    edge_refunds_micro_yuan: Mapped[int | None]
    edge_charges_micro_yuan: Mapped[int | None]

    last_reading_id: Mapped[int | None]
    last_reading_ts: Mapped[int | None]
    # The collector's message id of the newest money result applied: a reading with a smaller
    # id was sent before it, so its credits and refunds cannot include it (causal check).
    money_result_id: Mapped[int | None] = mapped_column(BigId)
    energy_wh: Mapped[int | None]
    power_w: Mapped[int | None]
    last_seen_ts: Mapped[int | None]
    created_ts: Mapped[int] = mapped_column(default=now_ts)

    gateway: Mapped[Gateway] = relationship(back_populates="meters")
    bus: Mapped[Bus] = relationship()

    @property
    def state(self) -> str:
        """The state the office sees: lost contact wins over the edge's display state."""
        return "lost_contact" if self.lost_contact else self.display_state


class PurchaseSequence(Base):
    """The last purchase number issued for a meter (F39). Locked (``FOR UPDATE``) while a sale
    takes the next one, so numbers are gap-free and never reused."""

    __tablename__ = "purchase_sequences"

    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"), primary_key=True)
    last_no: Mapped[int] = mapped_column(default=0)


class InboxEntry(Base):
    """An uplink envelope applied: the unique (gateway, seq) makes applying it exactly-once."""

    __tablename__ = "inbox"
    __table_args__ = (UniqueConstraint("gateway_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    seq: Mapped[int]
    received_ts: Mapped[int] = mapped_column(default=now_ts)
    messages: Mapped[int] = mapped_column(default=0)


class Quarantine(Base):
    """An uplink message the cloud could not apply (unknown meter, unknown command, bad field).
    Kept whole, with the reason, so nothing is lost and an operator can act on it."""

    __tablename__ = "quarantine"
    __table_args__ = (Index("ix_quarantine_gateway_id_seq", "gateway_id", "seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int]
    message: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(String(500))
    received_ts: Mapped[int] = mapped_column(default=now_ts)
