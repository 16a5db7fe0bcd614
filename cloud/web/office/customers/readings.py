"""抄表历史 (F19): the readings the collectors reported, newest first, for the whole park or one
meter: the register (总示值) and its time-of-use bands (尖/峰/平/谷) where the meter has them,
the energy since the meter's previous reading (区间用电), the charge the collector rated for it
and the balance it reported. Filters (dates, building, unit or meter) are in the URL; the
export runs the same statement over the whole filtered set.

The previous reading is looked up per row with the (meter, time) index, so a page costs the
same whatever the size of the table; readings archived by ``cloud.reporting.archive`` are no
longer here (their days are in the daily rollups and the archive files).
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import aliased

from cloud.models import Building, Floor, Meter, Reading, Unit
from cloud.reporting.exports import Column, xlsx_response
from cloud.web.office.board.views import meter_in_scope
from cloud.web.office.customers import bp
from cloud.web.office.lists import (
    arg,
    date_arg,
    day_start_ts,
    every_row,
    int_arg,
    paginate,
    site_name,
)
from cloud.web.office.security import current, db, page

BANDS = ("sharp", "peak", "flat", "valley")
COLUMNS = (
    Column("ts", _l("Read at"), "datetime"),
    Column("unit", _l("Unit no.")),
    Column("meter", _l("Meter no.")),
    Column("energy", _l("Reading (kWh)"), "kwh"),
    Column("sharp", _l("Critical peak (kWh)"), "kwh"),
    Column("peak", _l("Peak (kWh)"), "kwh"),
    Column("flat", _l("Flat (kWh)"), "kwh"),
    Column("valley", _l("Valley (kWh)"), "kwh"),
    Column("interval", _l("Since the previous reading (kWh)"), "kwh"),
    Column("charge", _l("Charge (yuan)"), "yuan"),
    Column("balance", _l("Balance (yuan)"), "yuan"),
)


def _statement(meter_id: str | None = None) -> Select[Any]:
    before = aliased(Reading)
    previous = (
        select(before.energy_wh)
        .where(
            before.meter_id == Reading.meter_id,
            or_(before.ts < Reading.ts, and_(before.ts == Reading.ts, before.id < Reading.id)),
        )
        .order_by(before.ts.desc(), before.id.desc())
        .limit(1)
        .correlate(Reading)
        .scalar_subquery()
    )
    stmt = (
        select(Reading, Unit.number.label("unit"), previous.label("previous_wh"))
        .join(Meter, Meter.id == Reading.meter_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
    )
    stmt = current().scope.meters(stmt)
    if meter_id is not None:
        stmt = stmt.where(Reading.meter_id == meter_id)
    start, end = date_arg("from"), date_arg("to")
    if start is not None:
        stmt = stmt.where(Reading.ts >= day_start_ts(start))
    if end is not None:
        stmt = stmt.where(Reading.ts < day_start_ts(end) + 86_400)
    if int_arg("building") is not None:
        floors = select(Floor.id).where(Floor.building_id == int_arg("building"))
        stmt = stmt.where(Unit.floor_id.in_(floors))
    q = arg("q")[:64]
    if q and meter_id is None:
        stmt = stmt.where(or_(Reading.meter_id.like(f"{q}%"), Unit.number.like(f"{q}%")))
    return stmt


ORDER = (Reading.ts.desc(), Reading.id.desc())


def interval_wh(reading: Reading, previous_wh: int | None) -> int | None:
    if reading.energy_wh is None or previous_wh is None or reading.energy_wh < previous_wh:
        return None  # the first reading, or a register reset (no energy can be known)
    return reading.energy_wh - previous_wh


def _render(meter: Any = None) -> Any:
    listing = paginate(_statement(meter.id if meter else None), order_by=ORDER, scalars=False)
    scope = current().scope
    buildings = list(
        db().scalars(
            select(Building).where(scope.building_ids_in(Building.id)).order_by(Building.name)
        )
    )
    return render_template(
        "office/customers/readings.html",
        listing=listing,
        meter=meter,
        bands=BANDS,
        interval_wh=interval_wh,
        buildings=buildings,
    )


@page(bp, "/readings", "readings.read", endpoint="readings")
def readings_list() -> Any:
    return _render()


@page(bp, "/meters/<meter_id>/readings", "readings.read")
def meter_readings(meter_id: str) -> Any:
    return _render(meter_in_scope(meter_id).Meter)


def _export(meter_id: str | None) -> Any:
    def rows() -> Any:
        for r in every_row(_statement(meter_id), order_by=ORDER, scalars=False):
            reading, bands = r.Reading, r.Reading.band_energy_wh or {}
            yield {
                "ts": reading.ts,
                "unit": r.unit,
                "meter": reading.meter_id,
                "energy": reading.energy_wh,
                **{b: bands.get(b) for b in BANDS},
                "interval": interval_wh(reading, r.previous_wh),
                "charge": reading.charge_micro_yuan,
                "balance": reading.balance_micro_yuan,
            }

    return xlsx_response(
        _("Reading history"),
        COLUMNS,
        rows(),
        site_name=site_name(),
        filters=[
            (_("Meter no."), meter_id or arg("q")),
            (_("From"), arg("from")),
            (_("To"), arg("to")),
            (_("Building"), arg("building")),
        ],
    )


@page(bp, "/readings/export", "readings.read")
def readings_export() -> Any:
    return _export(None)


@page(bp, "/meters/<meter_id>/readings/export", "readings.read")
def meter_readings_export(meter_id: str) -> Any:
    return _export(meter_in_scope(meter_id).Meter.id)
