"""Places and prices: site → building → floor → unit (户号), the site's default parameters (F13),
and tariffs with versions that take effect at a given instant (B05)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cloud.models.base import Base, now_ts


class Site(Base):
    __tablename__ = "sites"

    # The short code used in MQTT topics: gridvend/v1/{site}/...
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    created_ts: Mapped[int] = mapped_column(default=now_ts)

    buildings: Mapped[list[Building]] = relationship(back_populates="site")


class Building(Base):
    __tablename__ = "buildings"
    __table_args__ = (UniqueConstraint("site_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))

    site: Mapped[Site] = relationship(back_populates="buildings")
    floors: Mapped[list[Floor]] = relationship(back_populates="building")


class Floor(Base):
    __tablename__ = "floors"
    __table_args__ = (UniqueConstraint("building_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))

    building: Mapped[Building] = relationship(back_populates="floors")
    units: Mapped[list[Unit]] = relationship(back_populates="floor")


class Unit(Base):
    """A rentable unit; ``number`` is its 户号, unique within the site."""

    __tablename__ = "units"
    __table_args__ = (UniqueConstraint("site_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), index=True)
    floor_id: Mapped[int] = mapped_column(ForeignKey("floors.id"), index=True)
    number: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")

    floor: Mapped[Floor] = relationship(back_populates="units")


class SiteDefaults(Base):
    """Default parameters (F13) of a site; a meter's own value, where set, wins."""

    __tablename__ = "site_defaults"

    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"), primary_key=True)
    overload_power_w: Mapped[int | None]
    report_interval_s: Mapped[int] = mapped_column(default=30)
    history_interval_s: Mapped[int] = mapped_column(default=1800)
    alarm1_micro_yuan: Mapped[int | None]
    alarm2_micro_yuan: Mapped[int | None]
    price_micro_yuan_per_kwh: Mapped[int | None]
    # Out of the box 30,000 yuan (cloud.park.defaults; migration 0004); null: no cap.
    hoarding_cap_micro_yuan: Mapped[int | None] = mapped_column(default=30_000_000_000)
    # The most one sale may be: out of the box 10,000 yuan (cloud.park.defaults).
    max_sale_micro_yuan: Mapped[int] = mapped_column(
        default=10_000_000_000, server_default="10000000000"
    )
    alarm_sms_number: Mapped[str | None] = mapped_column(String(32))
    # Lost contact (F29/F30, F44): a meter with no reading, a collector with no heartbeat, for
    # this long.
    meter_lost_after_s: Mapped[int] = mapped_column(default=900)
    gateway_lost_after_s: Mapped[int] = mapped_column(default=120)
    # Archival (F03): raw readings older than this many days are exported and removed.
    archive_after_days: Mapped[int] = mapped_column(default=90)
    # Receipts (F13): the header printed on every till receipt, and how many copies print.
    receipt_header: Mapped[str | None] = mapped_column(String(200))
    receipt_copies: Mapped[int] = mapped_column(default=1, server_default="1")


class Tariff(Base):
    __tablename__ = "tariffs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id"))
    name: Mapped[str] = mapped_column(String(200), default="")

    versions: Mapped[list[TariffVersion]] = relationship(
        back_populates="tariff", order_by="TariffVersion.version"
    )


class TariffVersion(Base):
    """One version of a tariff; ``body`` is the engine's tariff version dict (bands, tiers,
    prices), sent to the edge as the ``tariff`` command ahead of ``effective_from_ts``."""

    __tablename__ = "tariff_versions"
    __table_args__ = (UniqueConstraint("tariff_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    tariff_id: Mapped[str] = mapped_column(ForeignKey("tariffs.id"), index=True)
    version: Mapped[int]
    effective_from_ts: Mapped[int]
    body: Mapped[dict[str, Any]]
    created_ts: Mapped[int] = mapped_column(default=now_ts)

    tariff: Mapped[Tariff] = relationship(back_populates="versions")
