"""表计监控 (F18, F35): the meter board as tiles or a list, its legend with counts, filters in
the URL, the part that refreshes itself while the board is open, one meter's panel with its
row actions, and the export of the whole filtered set.

The board is ``cloud.park.board`` (rows and legend in the operator's scope) and
``cloud.reporting.board`` (today's energy, the engine's runway) for the page shown. The page
polls ``board_live`` (htmx, every few seconds; the CSP allows it: no inline script) which
answers the legend, the tiles or rows and the pager: the operator sees a meter trip without
reloading, and the ticked boxes stay ticked (``hx-preserve``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from cloud.models import Building, Command, Floor, Gateway, Meter, Tariff, Unit, now_ts
from cloud.park import board
from cloud.reporting import board as figures
from cloud.reporting.exports import Column, xlsx_response
from cloud.web.office.board import bp, labels
from cloud.web.office.lists import PAGE_SIZES, Listing, arg, every_row, int_arg, site_name
from cloud.web.office.security import current, db, page

BOARD_PAGE_SIZES = PAGE_SIZES
DEFAULT_PER_PAGE = 100
REFRESH_S = 5  # how often an open board asks for fresh states
VIEWS = ("tiles", "list")

COLUMNS = (
    Column("unit", _l("Unit no.")),
    Column("room", _l("Room")),
    Column("building", _l("Building")),
    Column("floor", _l("Floor")),
    Column("tenant", _l("Tenant")),
    Column("meter", _l("Meter no.")),
    Column("collector", _l("Collector")),
    Column("state", _l("State")),
    Column("keep_power", _l("Keep power")),
    Column("relay", _l("Relay")),
    Column("balance", _l("Balance (yuan)"), "yuan"),
    Column("energy", _l("Reading (kWh)"), "kwh"),
    Column("tariff", _l("Tariff")),
    Column("last_seen", _l("Last seen"), "datetime"),
)


@dataclass
class Tile:
    """One meter as the board shows it."""

    meter: Meter
    state: str
    unit: str | None
    room: str | None
    floor: str | None
    building: str | None
    tenant: str | None
    account_number: str | None
    tariff: str | None
    today_wh: int | None = None
    runway_days: int = -1
    runway_text: str = "—"
    lost_for_s: int | None = None

    @property
    def keep_power(self) -> bool:
        return self.meter.mode == "keep_power"

    @property
    def tripped(self) -> bool:
        return self.meter.relay == "open"


class BoardListing(Listing):
    """A page of the board; its links keep every filter (several states too) and always point
    at the board page (the live part is fetched from another URL)."""

    def url(self, **changes: Any) -> str:
        return board_url(**changes)


def board_args() -> dict[str, list[str]]:
    """The board's query string, multi-valued (``state`` and ``flag`` repeat)."""
    return {k: [v for v in vs if v != ""] for k, vs in request.args.lists() if any(vs)}


def board_url(endpoint: str = "office_board.board", **changes: Any) -> str:
    args: dict[str, Any] = board_args()
    for key, value in changes.items():
        if value in (None, "", []):
            args.pop(key, None)
        else:
            args[key] = value
    return url_for(endpoint, **args)


def current_filter() -> board.Filter:
    states = tuple(s for s in request.args.getlist("state") if s in board.STATES)
    flags = tuple(f for f in request.args.getlist("flag") if f in board.FLAGS)
    return board.Filter(
        building=int_arg("building"),
        floor=int_arg("floor"),
        states=states,
        gateway=arg("gateway"),
        q=arg("q")[:64],
        flags=flags,
    )


def page_text() -> dict[str, Any]:
    """The words every tile repeats, translated once per page (not once per tile)."""
    return {
        "states": {name: labels.state(name) for name in board.STATES},
        "relays": {name: labels.relay(name) for name in labels.RELAY},
        "keep": _("Keep power"),
        "tripped": _("Relay tripped"),
        "metering_only": _("Metering only"),
        "select": _("Select meter"),
        "details": _("Details"),
        "default_price": _("Site default price"),
        # a meter's panel: this prefix and the meter id (ids are URL-safe: cloud.values.check_id)
        "panel": url_for("office_board.meter_panel", meter_id="-").removesuffix("-"),
    }


def tiles_of(rows: list[Any], now: int) -> list[Tile]:
    meters = [r.Meter for r in rows]
    page_figures = figures.figures(db(), meters, now) if meters else {}
    runway_texts: dict[int, str] = {}
    out = []
    for r in rows:
        m = r.Meter
        tile = Tile(m, r.state, r.unit, r.room, r.floor, r.building, r.tenant,
                    r.account_number, r.tariff)  # fmt: skip
        fig = page_figures.get(m.id)
        if fig is not None:
            tile.today_wh, tile.runway_days = fig.today_wh, fig.runway_days
            if fig.runway_days not in runway_texts:
                runway_texts[fig.runway_days] = labels.runway(fig.runway_days)
            tile.runway_text = runway_texts[fig.runway_days]
        if m.lost_contact and m.last_seen_ts is not None:
            tile.lost_for_s = max(0, now - m.last_seen_ts)
        out.append(tile)
    return out


def _page() -> tuple[BoardListing, dict[str, int]]:
    f = current_filter()
    scope = current().scope
    counts = board.legend(db(), f, scope)
    total = board.total(counts, f.states)
    per_page = int_arg("per_page") or DEFAULT_PER_PAGE
    per_page = per_page if per_page in BOARD_PAGE_SIZES else DEFAULT_PER_PAGE
    pages = max(1, -(-total // per_page))
    number = min(max(int_arg("page") or 1, 1), pages)
    stmt = board.statement(f, scope).order_by(Meter.id)
    rows = list(db().execute(stmt.limit(per_page).offset((number - 1) * per_page)))
    return BoardListing(tiles_of(rows, now_ts()), total, number, per_page), counts


def _choices() -> dict[str, Any]:
    scope = current().scope
    s = db()
    buildings = list(
        s.scalars(
            select(Building).where(scope.building_ids_in(Building.id)).order_by(Building.name)
        )
    )
    floors = select(Floor).where(scope.building_ids_in(Floor.building_id))
    if int_arg("building") is not None:
        floors = floors.where(Floor.building_id == int_arg("building"))
    return {
        "buildings": buildings,
        "floors": list(s.scalars(floors.order_by(Floor.building_id, Floor.name))),
        "gateways": list(s.scalars(scope.gateways(select(Gateway)).order_by(Gateway.id))),
        "tariffs": list(s.scalars(select(Tariff).order_by(Tariff.id))),
    }


def _context() -> dict[str, Any]:
    listing, counts = _page()
    view = arg("view") if arg("view") in VIEWS else "tiles"
    f = current_filter()
    return {
        "listing": listing,
        "counts": counts,
        "view": view,
        "filter": f,
        "states": board.STATES,
        "board_url": board_url,
        "page_sizes": BOARD_PAGE_SIZES,
        "refresh_s": REFRESH_S,
        "now": now_ts(),
        "text": page_text(),
    }


@page(bp, "", "meters.read", endpoint="board")
def board_page() -> Any:
    return render_template("office/board/board.html", **_context(), **_choices())


@page(bp, "/live", "meters.read")
def board_live() -> Any:
    """The part of the board that refreshes itself (legend, tiles or rows, pager)."""
    return render_template("office/board/_live.html", **_context())


@page(bp, "/export", "meters.read")
def board_export() -> Any:
    """Every meter of the filtered set, all states (the state filter applies when set)."""
    f = current_filter()
    stmt = board.statement(f, current().scope)
    rows = (
        {
            "unit": r.unit,
            "room": r.room,
            "building": r.building,
            "floor": r.floor,
            "tenant": r.tenant,
            "meter": r.Meter.id,
            "collector": r.Meter.gateway_id,
            "state": labels.state(r.state),
            "keep_power": _("Yes") if r.Meter.mode == "keep_power" else _("No"),
            "relay": labels.relay(r.Meter.relay),
            "balance": r.Meter.balance_micro_yuan,
            "energy": r.Meter.energy_wh,
            "tariff": r.tariff,
            "last_seen": r.Meter.last_seen_ts,
        }
        for r in every_row(stmt, order_by=Meter.id, scalars=False)
    )
    states = ", ".join(labels.state(s) for s in f.states)
    return xlsx_response(
        _("Meter board"),
        COLUMNS,
        rows,
        site_name=site_name(),
        filters=[
            (_("Search"), f.q),
            (_("Building"), arg("building")),
            (_("Floor"), arg("floor")),
            (_("Collector"), f.gateway),
            (_("State"), states),
        ],
    )


def meter_in_scope(meter_id: str) -> Any:
    """The board row of one meter in the operator's scope, or 404."""
    stmt = board.statement(board.Filter(), current().scope).where(Meter.id == meter_id)
    row = db().execute(stmt).first()
    if row is None:
        abort(404)
    return row


@page(bp, "/meters/<meter_id>", "meters.read")
def meter_panel(meter_id: str) -> Any:
    """One meter: its state, badges and figures, its row actions, its latest commands."""
    row = meter_in_scope(meter_id)
    (tile,) = tiles_of([row], now_ts())
    recent = list(
        db().scalars(
            select(Command)
            .where(Command.meter_id == meter_id)
            .order_by(Command.id.desc())
            .limit(10)
        )
    )
    unit = db().get(Unit, tile.meter.unit_id) if tile.meter.unit_id else None
    return render_template(
        "office/board/meter.html",
        tile=tile,
        commands=recent,
        unit=unit,
        tariffs=list(db().scalars(select(Tariff).order_by(Tariff.id))),
        back=request.args.get("back", ""),
    )
