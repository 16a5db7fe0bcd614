"""What the tenant's pages compute (``cloud.reporting.usage``), from readings the collector
reported on a known calendar: days (today included, before any rollup), months, the TOU split
from the band registers, the price in force and what the balance buys, and the credit runway
worked out by the engine's own function over the cloud's mirror (B07)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cloud.audit import Actor
from cloud.db import Database
from cloud.models import Meter
from cloud.money import accounts
from cloud.park import inventory
from cloud.reporting import archive, usage
from tests.cloud.support import T0, FakeEdge, seed_park, send, sync

DAY = 86_400
LOCAL = dt.timezone(dt.timedelta(hours=8))  # the seeded site is Asia/Shanghai; T0 is 08:00


def _at(day: int, hour: int) -> int:
    """UTC epoch seconds of ``hour`` o'clock Beijing on 1 January 2026 + ``day``."""
    return int(dt.datetime(2026, 1, 1 + day, hour, tzinfo=LOCAL).timestamp())


def _reading(edge: FakeEdge, wh: int, ts: int, bands: dict[str, int] | None) -> dict[str, Any]:
    msg = edge.reading("m-101", wh, 1_000_000, ts=ts)
    msg["band_energy_wh"] = bands
    return msg


def _world(tmp: Path) -> Database:
    db = Database(f"sqlite:///{tmp / 'usage.db'}")
    db.upgrade()
    with db.session() as s:
        seed_park(s)
        inventory.set_defaults(s, "studio", price_micro_yuan_per_kwh=1_000_000)
    with db.session() as s:
        spec = [{"meter": "m-101", "transfer_in_micro_yuan": 100_000_000}]
        accounts.open_account(s, {"name": "T", "phone": "1"}, spec, Actor("t"), now=T0)
    edges = {"gw-1": FakeEdge("gw-1")}
    sync(db, edges, now=T0)
    edge = edges["gw-1"]
    bands = {"sharp": 0, "peak": 0, "flat": 0, "valley": 0}
    send(db, edge, [_reading(edge, 0, _at(0, 9), dict(bands))], now=_at(0, 9))
    for day in (1, 2, 3):  # 10 kWh on each of 2, 3 and 4 January: 4 kWh peak, 6 kWh valley
        bands = {**bands, "peak": bands["peak"] + 4000, "valley": bands["valley"] + 6000}
        ts = _at(day, 23)
        send(db, edge, [_reading(edge, 10_000, ts, dict(bands))], now=ts)
    return db


def test_the_pages_figures_and_the_engines_runway(tmp_path: Path) -> None:
    db = _world(tmp_path)
    now = _at(4, 12)  # noon on 5 January: today has no reading yet
    with db.session() as s:
        archive.rollup_day(s, "studio", dt.date(2026, 1, 2), now=now)  # one day rolled up
    with db.session(readonly=True) as s:
        meter = s.get(Meter, "m-101")
        assert meter is not None
        assert meter.balance_micro_yuan == 70_000_000  # 100 in, 30 kWh at 1 yuan
        days = usage.days(s, meter, dt.date(2026, 1, 1), dt.date(2026, 1, 5))
        assert [d.energy_wh for d in days] == [0, 10_000, 10_000, 10_000, 0]
        assert [d.charge_micro_yuan for d in days] == [0, 10_000_000, 10_000_000, 10_000_000, 0]
        figures = usage.summary(s, meter, now)
        assert figures["price_micro_yuan_per_kwh"] == 1_000_000
        assert figures["buys_wh"] == 70_000  # 70 yuan at 1 yuan/kWh
        assert figures["today_wh"] == 0
        assert figures["month_wh"] == 30_000
        # Three complete days since the account opened, 10 kWh a day at 1 yuan: 70 // 10.
        assert figures["runway_days"] == 7
        assert figures["pill"] == "normal"
        charts = usage.charts(s, meter, now)
        assert len(charts["daily"]) == usage.DAYS
        assert charts["daily"][-1]["day"] == "2026-01-05"
        assert len(charts["monthly"]) == usage.MONTHS
        assert charts["monthly"][-1] == {
            "month": "2026-01",
            "energy_wh": 30_000,
            "charge_micro_yuan": 30_000_000,
        }
        assert charts["tou"] == {"sharp": 0, "peak": 12_000, "flat": 0, "valley": 18_000}


def test_no_history_no_runway_and_no_band_registers_no_split(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    db.upgrade()
    with db.session() as s:
        seed_park(s)
    with db.session() as s:
        spec = [{"meter": "m-101", "transfer_in_micro_yuan": 10_000_000}]
        accounts.open_account(s, {"name": "T", "phone": "1"}, spec, Actor("t"), now=T0)
    sync(db, {"gw-1": FakeEdge("gw-1")}, now=T0)
    with db.session(readonly=True) as s:
        meter = s.get(Meter, "m-101")
        assert meter is not None
        assert meter.balance_micro_yuan == 10_000_000
        figures = usage.summary(s, meter, T0 + DAY)
        assert figures["runway_days"] == -1  # credit, no history: shown as "not known yet"
        assert figures["price_micro_yuan_per_kwh"] is None  # no price anywhere
        assert figures["buys_wh"] == 0
        assert usage.charts(s, meter, T0 + DAY)["tou"] is None
