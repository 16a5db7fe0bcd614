"""What the edge reports: readings (each carrying the charge rated by the edge since the
meter's previous reading — the cloud's charge ledger), events, alarms derived from them, daily
rollups, and the record of archive runs (F03)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cloud.models.base import Base, BigId, money, now_ts


class Reading(Base):
    """A ``reading`` message as reported (docs/protocol.md). ``reading_id`` is the edge's id
    (per gateway, increasing); (gateway, reading_id) is unique so a reading counts once."""

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("gateway_id", "reading_id"),
        Index("ix_readings_meter_id_ts", "meter_id", "ts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(64))
    reading_id: Mapped[int]
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"))
    ts: Mapped[int] = mapped_column(index=True)
    energy_wh: Mapped[int | None]
    power_w: Mapped[int | None]
    relay: Mapped[str | None] = mapped_column(String(8))
    band_energy_wh: Mapped[dict[str, Any] | None]
    voltages_dv: Mapped[list[Any] | None]
    currents_ma: Mapped[list[Any] | None]
    charge_micro_yuan: Mapped[int] = mapped_column(default=0)
    balance_micro_yuan: Mapped[int | None]
    credits_micro_yuan: Mapped[int | None]
    refunds_micro_yuan: Mapped[int | None]
    charges_micro_yuan: Mapped[int | None]
    received_ts: Mapped[int] = mapped_column(default=now_ts)


class DailyRollup(Base):
    """One meter's day (in the site's time zone): energy and charges; what reports read once the
    raw readings are archived."""

    __tablename__ = "daily_rollups"
    __table_args__ = (UniqueConstraint("meter_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[str] = mapped_column(ForeignKey("meters.id"))
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    energy_wh: Mapped[int] = mapped_column(default=0)
    charge_micro_yuan: Mapped[int] = mapped_column(default=0)
    readings: Mapped[int] = mapped_column(default=0)
    max_power_w: Mapped[int | None]
    first_energy_wh: Mapped[int | None]
    last_energy_wh: Mapped[int | None]
    # The day's last reading: the next day's first interval starts there (migration 0011).
    last_reading_ts: Mapped[int | None]
    # The day's energy and the edge's charges split by time-of-use band (cloud.reporting.bands;
    # ``single``: energy rated at one price, or not rated). Rollups written before 0011 hold 0.
    sharp_wh: Mapped[int] = money()
    sharp_micro_yuan: Mapped[int] = money()
    peak_wh: Mapped[int] = money()
    peak_micro_yuan: Mapped[int] = money()
    flat_wh: Mapped[int] = money()
    flat_micro_yuan: Mapped[int] = money()
    valley_wh: Mapped[int] = money()
    valley_micro_yuan: Mapped[int] = money()
    deep_valley_wh: Mapped[int] = money()
    deep_valley_micro_yuan: Mapped[int] = money()
    single_wh: Mapped[int] = money()
    single_micro_yuan: Mapped[int] = money()
    updated_ts: Mapped[int] = mapped_column(default=now_ts)


class PlaceRollup(Base):
    """A day's meter rollups summed per building of a site (``building_id`` 0: meters in no
    building), written with them by ``archive.rollup_day`` (migration 0013): a site's or a
    building's year is a few thousand rows for the report centre."""

    __tablename__ = "place_rollups"
    __table_args__ = (UniqueConstraint("site_id", "building_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id"))
    building_id: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    meters: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    readings: Mapped[int] = money()
    energy_wh: Mapped[int] = money()
    charge_micro_yuan: Mapped[int] = money()
    sharp_wh: Mapped[int] = money()
    sharp_micro_yuan: Mapped[int] = money()
    peak_wh: Mapped[int] = money()
    peak_micro_yuan: Mapped[int] = money()
    flat_wh: Mapped[int] = money()
    flat_micro_yuan: Mapped[int] = money()
    valley_wh: Mapped[int] = money()
    valley_micro_yuan: Mapped[int] = money()
    deep_valley_wh: Mapped[int] = money()
    deep_valley_micro_yuan: Mapped[int] = money()
    single_wh: Mapped[int] = money()
    single_micro_yuan: Mapped[int] = money()
    updated_ts: Mapped[int] = mapped_column(default=now_ts)


class Event(Base):
    """An ``event`` message as reported; (gateway, event_id) unique."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("gateway_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    gateway_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[int]
    meter_id: Mapped[str | None] = mapped_column(String(64), index=True)
    ts: Mapped[int] = mapped_column(index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None]
    received_ts: Mapped[int] = mapped_column(default=now_ts)


class Alarm(Base):
    """An alarm, active (``active``) or in history (cleared). At most one active alarm of a kind
    per meter (or per collector, when ``meter_id`` is null); the services keep it so."""

    __tablename__ = "alarms"
    __table_args__ = (
        Index("ix_alarms_active_kind", "active", "kind"),
        Index("ix_alarms_raised_ts", "raised_ts"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    meter_id: Mapped[str | None] = mapped_column(ForeignKey("meters.id"), index=True)
    gateway_id: Mapped[str | None] = mapped_column(ForeignKey("gateways.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None]
    active: Mapped[bool] = mapped_column(default=True)
    raised_ts: Mapped[int] = mapped_column(default=now_ts)
    cleared_ts: Mapped[int | None]
    cleared_by: Mapped[str | None] = mapped_column(String(64))
    # Acknowledged (处理) by a person with a note; the alarm stays active until its cause clears.
    ack_ts: Mapped[int | None]
    ack_by: Mapped[str | None] = mapped_column(String(64))
    ack_note: Mapped[str | None] = mapped_column(String(500))


class ArchiveRun(Base):
    """One archival run: which readings left the database and where they went."""

    __tablename__ = "archive_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_ts: Mapped[int] = mapped_column(default=now_ts)
    cutoff_ts: Mapped[int]
    path: Mapped[str] = mapped_column(String(1000))
    format: Mapped[str] = mapped_column(String(8))
    rows: Mapped[int]
    charges_micro_yuan: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
