"""The meter board's query (``cloud.park.board``): lost contact overrides every state, a closed
meter shows as not opened, filters by building, floor, several states, collector, search and
badges, the building scope, the legend's counts over the filters; and its figures for a page
(``cloud.reporting.board``): today's energy and the engine's runway agree with the tenant
site's per-meter figures, rolled up or not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from cloud.access.scope import Scope
from cloud.audit import Actor
from cloud.db import Database
from cloud.models import Building, Floor, Meter
from cloud.money import accounts
from cloud.park import board, inventory
from cloud.reporting import archive, usage
from cloud.reporting import board as figures
from tests.cloud.support import T0, FakeEdge, seed_park, send, sync

LOCAL = dt.timezone(dt.timedelta(hours=8))


def _ids(s, f: board.Filter, scope: Scope | None = None) -> list[str]:
    return [row.Meter.id for row in s.execute(board.statement(f, scope).order_by(Meter.id))]


def test_filters_states_and_the_legend(db, park) -> None:
    with db.session() as s:
        accounts.open_account(s, {"name": "张三"}, ["m-101"], Actor("t"))
        accounts.open_account(s, {"name": "李四"}, ["m-201"], Actor("t"))
        states = {"m-101": "alarm1", "m-102": "closed", "m-103": "arrears", "m-201": "opened"}
        for meter_id, state in states.items():
            s.get(Meter, meter_id).display_state = state
        s.get(Meter, "m-103").lost_contact = True  # overrides arrears
        s.get(Meter, "m-201").mode = "keep_power"
        s.get(Meter, "m-102").relay = "open"
    with db.session(readonly=True) as s:
        rows = {r.Meter.id: r for r in s.execute(board.statement(board.Filter()))}
        assert rows["m-101"].state == "alarm1"
        assert rows["m-101"].tenant == "张三"
        assert rows["m-101"].unit == "A-101"
        assert rows["m-101"].building == "A"
        assert rows["m-102"].state == "not_opened"  # closed: free to open again
        assert rows["m-103"].state == "lost_contact"
        assert len(rows) == 7  # six prepaid and one plain meter
        assert _ids(s, board.Filter(states=("lost_contact", "alarm1"))) == ["m-101", "m-103"]
        assert _ids(s, board.Filter(states=("arrears",))) == []  # m-103 is lost, not arrears
        b = s.scalars(select(Building).where(Building.name == "B")).one()
        assert _ids(s, board.Filter(building=b.id)) == ["m-201"]
        floor = s.scalars(select(Floor).where(Floor.building_id != b.id)).first()
        assert _ids(s, board.Filter(floor=floor.id)) == ["m-101", "m-102", "m-103"]
        assert _ids(s, board.Filter(gateway="gw-2")) == ["m-201", "m-202", "m-203"]
        assert _ids(s, board.Filter(q="A-10")) == ["m-101", "m-102", "m-103"]
        assert _ids(s, board.Filter(q="李")) == ["m-201"]
        assert _ids(s, board.Filter(q="m-20")) == ["m-201", "m-202", "m-203"]
        assert _ids(s, board.Filter(flags=("keep_power",))) == ["m-201"]
        assert _ids(s, board.Filter(flags=("tripped",))) == ["m-102"]
        assert _ids(s, board.Filter(), Scope(frozenset({b.id}))) == ["m-201"]
        counts = board.legend(s, board.Filter(states=("alarm1",)))  # the state filter aside
        assert counts == {"opened": 1, "alarm1": 1, "alarm2": 0, "arrears": 0,
                          "not_opened": 4, "lost_contact": 1}  # fmt: skip
        assert board.total(counts, ("alarm1", "opened")) == 2
        assert board.total(counts, ()) == 7
        assert board.legend(s, board.Filter(gateway="gw-2"))["not_opened"] == 2


def _at(day: int, hour: int) -> int:
    return int(dt.datetime(2026, 1, 1 + day, hour, tzinfo=LOCAL).timestamp())


def test_the_pages_figures_agree_with_the_tenant_sites(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'board.db'}")
    db.upgrade()
    with db.session() as s:
        seed_park(s)
        inventory.set_defaults(s, "studio", price_micro_yuan_per_kwh=1_000_000)
    with db.session() as s:
        for meter_id, yuan in (("m-101", 100), ("m-102", 40), ("m-103", 5)):
            spec = [{"meter": meter_id, "transfer_in_micro_yuan": yuan * 1_000_000}]
            accounts.open_account(s, {"name": meter_id}, spec, Actor("t"), now=T0)
    edges = {"gw-1": FakeEdge("gw-1")}
    sync(db, edges, now=T0)
    edge = edges["gw-1"]
    use = {"m-101": 10_000, "m-102": 3_000}  # Wh a day; m-103 uses nothing
    for day in range(5):
        ts = _at(day, 23)
        msgs = [edge.reading(m, 0 if day == 0 else wh, 1_000_000, ts=ts) for m, wh in use.items()]
        send(db, edge, msgs, now=ts)
    now = _at(5, 12)
    send(db, edge, [edge.reading("m-101", 1_500, 1_000_000, ts=now - 60)], now=now)
    with db.session() as s:  # two of the past days rolled up, the others computed live
        archive.rollup_day(s, "studio", dt.date(2026, 1, 3), now=now)
        archive.rollup_day(s, "studio", dt.date(2026, 1, 5), now=now)
    with db.session(readonly=True) as s:
        meters = [s.get(Meter, m) for m in ("m-101", "m-102", "m-103", "m-201")]
        page = figures.figures(s, meters, now)
        for meter in meters[:3]:
            one = usage.summary(s, meter, now)
            assert page[meter.id].runway_days == one["runway_days"], meter.id
        assert page["m-101"].runway_days == 5  # 58.50 yuan left at 10 yuan a day
        assert page["m-102"].runway_days == 9  # 28 yuan at 3 yuan a day
        assert page["m-103"].runway_days == -1  # no consumption: not known
        assert page["m-201"].runway_days == -1  # no account
        assert page["m-101"].today_wh == 1_500
        assert page["m-102"].today_wh is None  # no reading today
