"""仪表管理: the meter list (filters in the URL, balance total, export) and the edit form; the
batch import is ``meter_import``."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, or_, select

from cloud.models import Building, Floor, Gateway, Meter, Tariff, Unit
from cloud.park import places, queries
from cloud.reporting.exports import Column, xlsx_response
from cloud.web.office.forms import Form
from cloud.web.office.lists import arg, every_row, int_arg, paginate, site_name
from cloud.web.office.security import current, db, page
from cloud.web.office.settings import bp

COLUMNS = (
    Column("id", _l("Meter no.")),
    Column("name", _l("Meter name")),
    Column("model", _l("Model")),
    Column("ct_ratio", _l("CT ratio"), "int"),
    Column("gateway", _l("Collector")),
    Column("address", _l("Comm address")),
    Column("unit", _l("Unit no.")),
    Column("prepaid", _l("Prepaid")),
    Column("online", _l("Online")),
    Column("balance", _l("Balance (yuan)"), "yuan"),
    Column("energy", _l("Reading (kWh)"), "kwh"),
    Column("last_seen", _l("Last seen"), "datetime"),
)


def _query() -> Select[Any]:
    stmt = current().scope.meters(select(Meter))
    if arg("q"):
        like = f"%{arg('q')}%"
        stmt = stmt.where(or_(Meter.id.ilike(like), Meter.name.ilike(like)))
    filters: dict[str, Any] = {}
    if int_arg("building") is not None:
        filters["building"] = int_arg("building")
    if arg("gateway"):
        filters["gateway"] = arg("gateway")
    if filters:
        stmt = stmt.where(Meter.id.in_(queries.meter_query(filters).with_only_columns(Meter.id)))
    if arg("account") == "open":
        stmt = stmt.where(Meter.account_id.is_not(None))
    elif arg("account") == "none":
        stmt = stmt.where(Meter.account_id.is_(None))
    if arg("online") in ("yes", "no"):
        stmt = stmt.where(Meter.lost_contact.is_(arg("online") == "no"))
    return stmt


def _units(meters: list[Meter]) -> dict[int, Unit]:
    ids = {m.unit_id for m in meters if m.unit_id is not None}
    return {u.id: u for u in db().scalars(select(Unit).where(Unit.id.in_(ids)))} if ids else {}


def _filter_choices() -> dict[str, Any]:
    scope = current().scope
    return {
        "buildings": list(
            db().scalars(
                select(Building).where(scope.building_ids_in(Building.id)).order_by(Building.name)
            )
        ),
        "gateways": list(db().scalars(scope.gateways(select(Gateway)).order_by(Gateway.id))),
    }


@page(bp, "/meters", "meters.read", endpoint="meters")
def meters_list() -> Any:
    listing = paginate(_query(), order_by=Meter.id, totals={"balance": Meter.balance_micro_yuan})
    return render_template(
        "office/settings/meters.html",
        listing=listing,
        units=_units(listing.rows),
        **_filter_choices(),
    )


@page(bp, "/meters/export", "meters.read")
def meters_export() -> Any:
    meters = list(every_row(_query(), order_by=Meter.id))
    units = _units(meters)
    rows = (
        {
            "id": m.id,
            "name": m.name,
            "model": m.model,
            "ct_ratio": m.ct_ratio,
            "gateway": m.gateway_id,
            "address": m.address,
            "unit": units[m.unit_id].number if m.unit_id in units else "",
            "prepaid": _("Yes") if m.prepaid else _("No"),
            "online": _("Lost contact") if m.lost_contact else _("Online"),
            "balance": m.balance_micro_yuan,
            "energy": m.energy_wh,
            "last_seen": m.last_seen_ts,
        }
        for m in meters
    )
    total = sum(m.balance_micro_yuan for m in meters)
    filters = [
        (_("Search"), arg("q")),
        (_("Building"), arg("building")),
        (_("Collector"), arg("gateway")),
    ]
    return xlsx_response(
        _("Meters"),
        COLUMNS,
        rows,
        filters=filters,
        site_name=site_name(),
        totals={"balance": total},
        totals_label=_("Total"),
    )


def _meter(meter_id: str) -> Meter:
    found = db().scalars(current().scope.meters(select(Meter)).where(Meter.id == meter_id))
    meter = found.first()
    if meter is None:
        abort(404)
    return meter


@page(bp, "/meters/<meter_id>", "meters.read", methods=("GET",))
def meter_edit(meter_id: str) -> Any:
    return _edit_page(_meter(meter_id), None)


def _edit_page(meter: Meter, form: Form | None, status: int = 200) -> Any:
    site_id = db().get(Gateway, meter.gateway_id).site_id  # type: ignore[union-attr]
    stmt = current().scope.units(select(Unit)).where(Unit.site_id == site_id)
    unit_list = list(db().scalars(stmt.order_by(Unit.number)))
    tariffs = list(db().scalars(select(Tariff).order_by(Tariff.id)))
    unit = db().get(Unit, meter.unit_id) if meter.unit_id else None
    place = None
    if unit is not None:
        floor = db().get(Floor, unit.floor_id)
        place = f"{floor.building.name} · {floor.name}" if floor else None
    return render_template(
        "office/settings/meter_form.html",
        meter=meter,
        form=form,
        units=unit_list,
        tariffs=tariffs,
        unit=unit,
        place=place,
    ), status


@page(bp, "/meters/<meter_id>/edit", "park.manage", methods=("POST",))
def meter_save(meter_id: str) -> Any:
    meter = _meter(meter_id)
    form = Form()
    name = form.text("name", required=False, max_len=200)
    unit_no = form.value("unit_no")
    ct = form.integer("ct_ratio", low=1, high=100_000)
    pt = form.integer("pt_ratio", low=1, high=100_000)
    tariff = form.value("tariff_id")
    prepaid = form.checkbox("prepaid")
    if form.ok:
        fields: dict[str, Any] = {"name": name, "ct_ratio": ct, "pt_ratio": pt, "prepaid": prepaid}
        if unit_no:
            fields["unit_no"] = unit_no
        if tariff:
            fields["tariff_id"] = tariff
        form.run(lambda: places.edit_meter(db(), meter, current().actor, **fields))
    if form.ok:
        flash(_("Meter %(id)s saved.", id=meter.id), "success")
        return redirect(url_for("office_settings.meters"))
    db().refresh(meter)
    return _edit_page(meter, form, 422)
