"""Meters, commands, collectors and tariffs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cloud.control import commands
from cloud.control import settings as site_defaults
from cloud.errors import InvalidError
from cloud.models import Gateway, Tariff, TariffVersion
from cloud.money import meters
from cloud.park import gateways, inventory
from cloud.park.queries import STATES, meter_query
from cloud.web.api import Ctx, Param, endpoint, reject_unknown, require
from cloud.web.api.schemas import BOOL, COMMAND, INT, OBJ, STR, array, enum, obj, ref

STATE = {"type": "string", "enum": list(STATES)}
_FILTERS = [
    Param("state", STATE, "only meters in this state"),
    Param("building", INT, "only meters in this building (id)"),
    Param("floor", INT, "only meters on this floor (id)"),
    Param("unit", INT, "only meters of this unit (id)"),
    Param("gateway", STR, "only meters of this collector"),
    Param("account", INT, "only meters of this account"),
]


def _filters(ctx: Ctx) -> dict[str, Any]:
    return {
        "state": ctx.arg("state"),
        "building": ctx.arg("building"),
        "floor": ctx.arg("floor"),
        "unit": ctx.arg("unit"),
        "gateway": ctx.arg("gateway"),
        "account": ctx.arg("account"),
        "prepaid": ctx.bool_arg("prepaid"),
    }


@endpoint(
    "/meters",
    "GET",
    "meters.read",
    "List meters with their live state (F18, F35)",
    tag="meters",
    params=[
        *_FILTERS,
        Param("prepaid", {"type": "boolean"}, "prepaid or plain meters"),
        Param("limit", INT, "at most this many (default 1000, max 5000)"),
        Param("offset", INT, "skip this many"),
    ],
    response=obj({"meters": array(ref("Meter")), "count": INT}),
)
def list_meters(ctx: Ctx) -> Any:
    limit = ctx.int_arg("limit", 1000, 1, 5000)
    offset = ctx.int_arg("offset", 0, 0)
    rows = list(ctx.session.scalars(meter_query(_filters(ctx)).limit(limit).offset(offset)))
    units = meters.unit_numbers(ctx.session, rows)
    return {"meters": [meters.to_dict(m, units) for m in rows], "count": len(rows)}


@endpoint(
    "/meters/<meter_id>",
    "GET",
    "meters.read",
    "One meter with its ledger totals and purchase count",
    tag="meters",
    response=ref("MeterDetail"),
)
def get_meter(ctx: Ctx, meter_id: str) -> Any:
    return meters.detail(ctx.session, meters.get(ctx.session, meter_id))


_COMMAND_BODY = obj(
    {
        "op": enum(*commands.ACTIONS),
        "args": {
            "type": "object",
            "description": "dispatch_tariff: {tariff_id}; dispatch_settings: partial settings "
            "(docs/architecture.md); resolve_anomaly: {action: bill|rebase}",
        },
    },
    ["op"],
)


@endpoint(
    "/meters/<meter_id>/commands",
    "POST",
    "meters.command",
    "Send a command to a meter (F36): trip, close, keep_power, restore_prepaid, "
    "dispatch_tariff, dispatch_settings, read_now",
    tag="commands",
    body=_COMMAND_BODY,
    response=obj({"commands": array(COMMAND)}),
    status=202,
)
def meter_command(ctx: Ctx, meter_id: str) -> Any:
    reject_unknown(ctx.body, {"op", "args"})
    op = require(ctx.body, "op", str)
    args = ctx.body.get("args") or {}
    if not isinstance(args, dict):
        return _bad_args()
    meter = meters.get(ctx.session, meter_id)
    created = commands.issue(ctx.session, [meter], op, args, ctx.actor)
    return {"commands": [commands.to_dict(c) for c in created]}, 202


def _bad_args() -> Any:
    raise InvalidError("args must be an object", "args")


@endpoint(
    "/commands/batch",
    "POST",
    "meters.command",
    "One command to many meters (F18): a list of meters, or all (with filters)",
    tag="commands",
    body=obj(
        {
            "op": enum(*commands.ACTIONS),
            "args": OBJ,
            "meters": array(STR),
            "all": {"type": "boolean"},
            "gateway": STR,
            "building": INT,
            "floor": INT,
            "state": STATE,
        },
        ["op"],
    ),
    response=obj({"batch_id": INT, "count": INT, "commands": array(INT)}),
    status=202,
)
def batch_command(ctx: Ctx) -> Any:
    reject_unknown(
        ctx.body, {"op", "args", "meters", "all", "gateway", "building", "floor", "state"}
    )
    op = require(ctx.body, "op", str)
    args = ctx.body.get("args") or {}
    if not isinstance(args, dict):
        return _bad_args()
    selection = {k: v for k, v in ctx.body.items() if k not in ("op", "args")}
    group, created = commands.batch(ctx.session, op, args, selection, ctx.actor)
    return {"batch_id": group.id, "count": group.count, "commands": [c.id for c in created]}, 202


@endpoint(
    "/commands/<int:command_id>",
    "GET",
    "meters.read",
    "A command and its lifecycle (pending → sent → applied/rejected → verified)",
    tag="commands",
    response=COMMAND,
)
def get_command(ctx: Ctx, command_id: int) -> Any:
    return commands.to_dict(commands.get(ctx.session, command_id))


@endpoint(
    "/gateways",
    "GET",
    "meters.read",
    "Collectors, online state and last heartbeat (F10, F30)",
    tag="meters",
    response=obj({"gateways": array(OBJ)}),
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
    response=obj({"tariffs": array(OBJ)}),
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
    "Add a tariff version (created with the tariff when new); checked by the engine's rules",
    tag="tariffs",
    body=obj(
        {
            "name": STR,
            "version": {
                "type": "object",
                "description": "version, effective_from and prices (edge/core/tariff.py)",
            },
        },
        ["version"],
    ),
    response=obj({"tariff_id": STR, "version": INT, "effective_from": INT}),
    status=201,
)
def add_tariff_version(ctx: Ctx, tariff_id: str) -> Any:
    reject_unknown(ctx.body, {"name", "version"})
    body = require(ctx.body, "version", dict)
    version = inventory.add_tariff_version(
        ctx.session, tariff_id, body, ctx.actor, name=ctx.body.get("name") or ""
    )
    return {
        "tariff_id": version.tariff_id,
        "version": version.version,
        "effective_from": version.effective_from_ts,
    }, 201


_DEFAULTS = obj(
    {
        "site": STR,
        "price_micro_yuan_per_kwh": INT,
        "alarm1_micro_yuan": INT,
        "alarm2_micro_yuan": INT,
        "hoarding_cap_micro_yuan": INT,
        "overload_power_w": INT,
        "report_interval_s": INT,
        "history_interval_s": INT,
        "alarm_sms_number": STR,
        "meter_lost_after_s": INT,
        "gateway_lost_after_s": INT,
        "archive_after_days": INT,
        "receipt_header": STR,
        "receipt_copies": INT,
    }
)


@endpoint(
    "/sites/<site_id>/defaults",
    "GET",
    "meters.read",
    "A site's default parameters (F13): what meters without their own values are billed by",
    tag="sites",
    response=_DEFAULTS,
)
def get_site_defaults(ctx: Ctx, site_id: str) -> Any:
    return site_defaults.to_dict(site_defaults.get(ctx.session, site_id))


@endpoint(
    "/sites/<site_id>/defaults",
    "PUT",
    "settings.manage",
    "Change some of a site's defaults (null clears one); unless dispatch is false, each changed "
    "price, alarm amount, hoarding cap or overload threshold is sent at once to the site's open "
    "meters that have no value of their own",
    tag="sites",
    body=obj({**_DEFAULTS["properties"], "dispatch": BOOL}),
    response=obj({"defaults": _DEFAULTS, "commands_sent": INT}),
)
def put_site_defaults(ctx: Ctx, site_id: str) -> Any:
    values = dict(ctx.body)
    values.pop("site", None)
    dispatch = values.pop("dispatch", True)
    if not isinstance(dispatch, bool):
        raise InvalidError("dispatch must be true or false", "dispatch")
    defaults, sent = site_defaults.change(
        ctx.session, site_id, values, ctx.actor, dispatch=dispatch
    )
    return {"defaults": site_defaults.to_dict(defaults), "commands_sent": sent}
