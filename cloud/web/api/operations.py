"""Meters, commands, collectors and tariffs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cloud.control import commands
from cloud.control import settings as site_defaults
from cloud.models import Gateway, Tariff, TariffVersion
from cloud.money import meters
from cloud.park import gateways, inventory
from cloud.park.queries import STATES, meter_query
from cloud.web.api import Ctx, Param, endpoint
from cloud.web.api.bodies import BATCH, COMMAND, DEFAULTS_BODY, TARIFF_VERSION
from cloud.web.api.schemas import (
    ID_STR,
    INT,
    OBJ,
    OPT_INT,
    OPT_STR,
    RECORD_ID,
    STR,
    array,
    enum,
    integer,
    line,
    obj,
    ref,
)

STATE = enum(*STATES)
_FILTERS = [
    Param("state", STATE, "only meters in this state"),
    Param("building", RECORD_ID, "only meters in this building (id)"),
    Param("floor", RECORD_ID, "only meters on this floor (id)"),
    Param("unit", RECORD_ID, "only meters of this unit (id)"),
    Param("gateway", ID_STR, "only meters of this collector"),
    Param("account", RECORD_ID, "only meters of this account"),
    Param("prepaid", {"type": "boolean"}, "prepaid (true) or plain (false) meters"),
]


@endpoint(
    "/meters",
    "GET",
    "meters.read",
    "List meters with their live state (F18, F35)",
    tag="meters",
    params=[
        *_FILTERS,
        Param("limit", integer(1, 5000), "at most this many (default 1000, max 5000)"),
        Param("offset", integer(0, 10_000_000), "skip this many"),
    ],
    response=obj({"meters": array(ref("Meter")), "count": INT}, ["meters", "count"]),
)
def list_meters(ctx: Ctx) -> Any:
    filters = {p.name: ctx.params.get(p.name) for p in _FILTERS}
    q = meter_query(filters).limit(ctx.params.get("limit", 1000))
    rows = list(ctx.session.scalars(q.offset(ctx.params.get("offset", 0))))
    units = meters.unit_numbers(ctx.session, rows)
    return {"meters": [meters.to_dict(m, units) for m in rows], "count": len(rows)}


@endpoint(
    "/meters/<meter_id>",
    "GET",
    "meters.read",
    "One meter with its ledger totals, purchase count, and its settings: desired (what its "
    "collector should have) and applied (what the collector confirmed) apart",
    tag="meters",
    response=ref("MeterDetail"),
)
def get_meter(ctx: Ctx, meter_id: str) -> Any:
    return meters.detail(ctx.session, meters.get(ctx.session, meter_id))


_COMMANDS = obj({"commands": array(ref("Command"))}, ["commands"])


@endpoint(
    "/meters/<meter_id>/commands",
    "POST",
    "meters.command",
    "Send a command to a meter (F36): trip, close, keep_power, restore_prepaid, read_now, "
    "clear_overload (no args), dispatch_settings (settings), dispatch_tariff ({tariff_id}), "
    "resolve_anomaly ({action: bill|rebase}). Settings the collector would refuse are 409.",
    tag="commands",
    body=COMMAND,
    response=_COMMANDS,
    status=202,
)
def meter_command(ctx: Ctx, meter_id: str) -> Any:
    meter = meters.get(ctx.session, meter_id)
    created = commands.issue(
        ctx.session, [meter], ctx.body["op"], ctx.body.get("args") or {}, ctx.actor
    )
    return {"commands": [commands.to_dict(c) for c in created]}, 202


@endpoint(
    "/commands/batch",
    "POST",
    "meters.command",
    "One command to many meters (F18): a list of meters, or all (with filters); 404 when the "
    "selection matches no meter",
    tag="commands",
    body=BATCH,
    response=obj(
        {"batch_id": INT, "count": INT, "commands": array(INT)}, ["batch_id", "count", "commands"]
    ),
    status=202,
)
def batch_command(ctx: Ctx) -> Any:
    selection = {k: v for k, v in ctx.body.items() if k not in ("op", "args")}
    group, created = commands.batch(
        ctx.session, ctx.body["op"], ctx.body.get("args") or {}, selection, ctx.actor
    )
    return {"batch_id": group.id, "count": group.count, "commands": [c.id for c in created]}, 202


@endpoint(
    "/commands/<int:command_id>",
    "GET",
    "meters.read",
    "A command and its lifecycle (pending → sent → applied/rejected → verified)",
    tag="commands",
    response=ref("Command"),
)
def get_command(ctx: Ctx, command_id: int) -> Any:
    return commands.to_dict(commands.get(ctx.session, command_id))


@endpoint(
    "/gateways",
    "GET",
    "meters.read",
    "Collectors, online state and last heartbeat (F10, F30)",
    tag="meters",
    response=obj({"gateways": array(OBJ)}, ["gateways"]),
)
def list_gateways(ctx: Ctx) -> Any:
    rows = ctx.session.scalars(select(Gateway).order_by(Gateway.id))
    return {"gateways": [gateways.to_dict(g) for g in rows]}


@endpoint(
    "/tariffs",
    "GET",
    "meters.read",
    "Tariffs and their versions (with effective instants)",
    tag="tariffs",
    response=obj(
        {"tariffs": array(obj({"id": STR, "name": STR, "versions": array(OBJ)}))}, ["tariffs"]
    ),
)
def list_tariffs(ctx: Ctx) -> Any:
    out = []
    for tariff in ctx.session.scalars(select(Tariff).order_by(Tariff.id)):
        versions = ctx.session.scalars(
            select(TariffVersion)
            .where(TariffVersion.tariff_id == tariff.id)
            .order_by(TariffVersion.version)
        )
        out.append(
            {
                "id": tariff.id,
                "name": tariff.name,
                "versions": [commands.tariff_args(v)["version"] for v in versions],
            }
        )
    return {"tariffs": out}


@endpoint(
    "/tariffs/<tariff_id>/versions",
    "POST",
    "tariffs.manage",
    "Add a tariff version (created with the tariff when new); checked by the engine's rules "
    "(409 when its schedule or prices break them, or its number or start is taken)",
    tag="tariffs",
    body=obj({"name": line(200), "version": TARIFF_VERSION}, ["version"]),
    response=obj(
        {"tariff_id": STR, "version": INT, "effective_from": INT},
        ["tariff_id", "version", "effective_from"],
    ),
    status=201,
)
def add_tariff_version(ctx: Ctx, tariff_id: str) -> Any:
    version = inventory.add_tariff_version(
        ctx.session, tariff_id, ctx.body["version"], ctx.actor, name=ctx.body.get("name") or ""
    )
    return {
        "tariff_id": version.tariff_id,
        "version": version.version,
        "effective_from": version.effective_from_ts,
    }, 201


_DEFAULTS = obj(
    {
        "site": STR,
        **{
            name: OPT_STR if name in ("alarm_sms_number", "receipt_header") else OPT_INT
            for name in site_defaults.EDITABLE
        },
    },
    ["site"],
)


@endpoint(
    "/sites/<site_id>/defaults",
    "GET",
    "meters.read",
    "A site's default parameters (F13): what meters without their own values are billed by, "
    "and the till's limits",
    tag="sites",
    response=_DEFAULTS,
)
def get_site_defaults(ctx: Ctx, site_id: str) -> Any:
    return site_defaults.to_dict(site_defaults.get(ctx.session, site_id))


@endpoint(
    "/sites/<site_id>/defaults",
    "PUT",
    "settings.manage",
    "Change some of a site's defaults (null clears one that may be cleared). Each value is "
    "checked, then the combination by the engine's rules (alarm 1 ≥ alarm 2: 409), before "
    "anything is stored or sent; unless dispatch is false, each changed price, alarm amount, "
    "hoarding cap or overload threshold is sent at once to the site's open meters that have no "
    "value of their own",
    tag="sites",
    body=DEFAULTS_BODY,
    response=obj({"defaults": _DEFAULTS, "commands_sent": INT}, ["defaults", "commands_sent"]),
)
def put_site_defaults(ctx: Ctx, site_id: str) -> Any:
    values = dict(ctx.body)
    dispatch = values.pop("dispatch", True)
    defaults, sent = site_defaults.change(
        ctx.session, site_id, values, ctx.actor, dispatch=dispatch
    )
    return {"defaults": site_defaults.to_dict(defaults), "commands_sent": sent}
