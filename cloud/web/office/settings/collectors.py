"""通讯管理机: collectors with their online state, last heartbeat, time since, meters below;
"test communication" sends a round-trip command and shows its result (the page polls it)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, or_, select

from cloud.control import commands
from cloud.models import Command, Gateway, Meter, now_ts
from cloud.reporting.exports import Column, xlsx_response
from cloud.web.office.lists import arg, every_row, paginate, site_name
from cloud.web.office.security import current, db, page
from cloud.web.office.settings import bp

COLUMNS = (
    Column("id", _l("Collector no.")),
    Column("name", _l("Name")),
    Column("site", _l("Site")),
    Column("online", _l("Online")),
    Column("last_seen", _l("Last seen"), "datetime"),
    Column("meters", _l("Meters below"), "int"),
)


def _query() -> Select[Any]:
    stmt = current().scope.gateways(select(Gateway))
    if arg("q"):
        like = f"%{arg('q')}%"
        stmt = stmt.where(or_(Gateway.id.ilike(like), Gateway.name.ilike(like)))
    if arg("online") in ("yes", "no"):
        stmt = stmt.where(Gateway.online.is_(arg("online") == "yes"))
    return stmt


def _meter_counts(ids: list[str]) -> dict[str, int]:
    rows = db().execute(
        select(Meter.gateway_id, func.count())
        .where(Meter.gateway_id.in_(ids))
        .group_by(Meter.gateway_id)
    )
    return {gw: int(n) for gw, n in rows}


@page(bp, "/collectors", "meters.read", endpoint="collectors")
def collectors_list() -> Any:
    listing = paginate(_query(), order_by=Gateway.id)
    counts = _meter_counts([g.id for g in listing.rows])
    return render_template(
        "office/settings/collectors.html", listing=listing, counts=counts, now=now_ts()
    )


@page(bp, "/collectors/export", "meters.read")
def collectors_export() -> Any:
    gateways = list(every_row(_query(), order_by=Gateway.id))
    counts = _meter_counts([g.id for g in gateways])
    rows = (
        {
            "id": g.id,
            "name": g.name,
            "site": g.site_id,
            "online": _("Online") if g.online else _("Offline"),
            "last_seen": g.last_heartbeat_ts,
            "meters": counts.get(g.id, 0),
        }
        for g in gateways
    )
    filters = [(_("Search"), arg("q")), (_("Online"), arg("online"))]
    return xlsx_response(_("Collectors"), COLUMNS, rows, filters=filters, site_name=site_name())


def _gateway(gateway_id: str) -> Gateway:
    gw = db().scalars(current().scope.gateways(select(Gateway)).where(Gateway.id == gateway_id))
    found = gw.first()
    if found is None:
        abort(404)
    return found


@page(bp, "/collectors/<gateway_id>", "meters.read")
def collector_detail(gateway_id: str) -> Any:
    gw = _gateway(gateway_id)
    meters = list(
        db().scalars(
            current()
            .scope.meters(select(Meter))
            .where(Meter.gateway_id == gw.id)
            .order_by(Meter.id)
        )
    )
    pings = list(
        db().scalars(
            select(Command)
            .where(Command.gateway_id == gw.id, Command.action == "ping")
            .order_by(Command.id.desc())
            .limit(5)
        )
    )
    return render_template(
        "office/settings/collector.html", gw=gw, meters=meters, pings=pings, now=now_ts()
    )


@page(bp, "/collectors/<gateway_id>/ping", "meters.command", methods=("POST",))
def collector_ping(gateway_id: str) -> Any:
    gw = _gateway(gateway_id)
    commands.ping_gateway(db(), gw.id, current().actor)
    flash(_("Test sent to %(id)s; the result appears below when it answers.", id=gw.id), "info")
    return redirect(url_for("office_settings.collector_detail", gateway_id=gw.id))


@page(bp, "/collectors/<gateway_id>/pings", "meters.read")
def collector_pings(gateway_id: str) -> Any:
    """The ping results alone (htmx polls this part of the page)."""
    gw = _gateway(gateway_id)
    pings = list(
        db().scalars(
            select(Command)
            .where(Command.gateway_id == gw.id, Command.action == "ping")
            .order_by(Command.id.desc())
            .limit(5)
        )
    )
    return render_template("office/settings/_pings.html", gw=gw, pings=pings)
