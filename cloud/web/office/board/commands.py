"""The board's row and batch actions (F36) and the command status page (B03).

An action on the board, on one meter or on many, is one batch (``cloud.control.commands.batch``,
the service the API's ``POST /commands/batch`` calls): keep power, restore prepaid, trip, close,
push a tariff, push settings, read now. Trips, closes and the power modes ask twice (the count
and a reason, which goes to the operation log). Every batch opens its status page: per meter
pending → sent → applied → verified, the collector's reason when it failed, and a retry of the
failed ones (a new batch of the same command for those meters). The page follows the commands
by itself (htmx) until none is on its way.
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, select

from cloud.control import commands
from cloud.control.lifecycle import OPEN_STATUSES
from cloud.models import Command, CommandBatch, Meter, Operator, Unit
from cloud.park import board
from cloud.park.board import Rows
from cloud.web.office.board import bp, labels
from cloud.web.office.board.views import current_filter
from cloud.web.office.forms import Form
from cloud.web.office.lists import paginate
from cloud.web.office.security import current, db, page

SETTING_FIELDS = {
    "alarm1": "alarm1_micro_yuan",
    "alarm2": "alarm2_micro_yuan",
    "hoarding_cap": "hoarding_cap_micro_yuan",
}
MAX_SELECTED = 10_000


def _safe_back(value: str) -> str:
    if value.startswith("/office/") and "//" not in value:
        return value
    return url_for("office_board.board")


def _selected(form: Form, action: str) -> list[str]:
    """The meters the action is for: the ticked ones, or every meter of the board's filters
    (its query string; plain meters left out of actions they cannot take), in scope."""
    scope = current().scope
    if form.value("target") == "filtered":
        stmt = board.statement(current_filter(), scope).order_by(Meter.id)
        if action in commands.PREPAID_ONLY:
            stmt = stmt.where(Meter.prepaid.is_(True))
        return [r.Meter.id for r in db().execute(stmt.limit(MAX_SELECTED))]
    wanted = list(dict.fromkeys(v for v in form.values("meter") if v))[:MAX_SELECTED]
    if not wanted:
        return []
    stmt = board.statement(board.Filter(), scope).where(Meter.id.in_(wanted))
    found = {r.Meter.id for r in db().execute(stmt)}
    return [m for m in wanted if m in found]


def _args(form: Form, action: str) -> dict[str, Any]:
    if action == "dispatch_tariff":
        return {"tariff_id": form.text("tariff_id", max_len=64)}
    if action == "dispatch_settings":
        args = {}
        for name, setting in SETTING_FIELDS.items():
            value = form.yuan(name, required=False)
            if value is not None:
                args[setting] = value
        if not args and form.ok:
            form.fail(None, _("Give at least one setting to push."))
        return args
    return {}


@page(bp, "/commands", "meters.command", methods=("POST",))
def board_command() -> Any:
    form = Form()
    back = _safe_back(form.value("back"))
    action = form.choice("action", list(labels.ACTIONS))
    args = _args(form, action) if form.ok else {}
    reason = form.text("reason", required=action in labels.DANGEROUS, max_len=500)
    meters = _selected(form, action) if form.ok else []
    if form.ok and not meters:
        form.fail(None, _("Tick the meters first (or choose every meter of the filters)."))
    group = None
    if form.ok:
        result = form.run(
            lambda: commands.batch(
                db(), action, args, {"meters": meters}, current().actor, reason=reason
            )
        )
        group = result[0] if result else None
    if group is None:
        flash(form.message or next(iter(form.errors.values()), _("Nothing was sent.")), "error")
        return redirect(back, code=303)
    return redirect(url_for("office_board.batch", batch_id=group.id), code=303)


def _batch(batch_id: int) -> CommandBatch:
    group = db().get(CommandBatch, batch_id)
    if group is None:
        abort(404)
    return group


def _rows(group: CommandBatch) -> list[Any]:
    """The batch's per-meter commands in the operator's scope, with each meter's unit."""
    stmt: Rows = (
        select(Command, Unit.number.label("unit"))
        .join(Meter, Meter.id == Command.meter_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(Command.batch_id == group.id)
        .order_by(Command.id)
    )
    rows = list(db().execute(current().scope.meters(stmt)))
    if not rows and not current().scope.everything:
        abort(404)
    return rows


def _summary(rows: list[Any]) -> dict[str, int]:
    """How far the batch got: how many commands reached each step (a refused one was sent and
    answered), how many failed and how many are still on their way."""
    statuses = [r.Command.status for r in rows]
    return {
        "total": len(statuses),
        "sent": sum(1 for s in statuses if s != "pending"),
        "applied": sum(1 for s in statuses if s in ("applied", "verified")),
        "verified": statuses.count("verified"),
        "rejected": statuses.count("rejected"),
        "open": sum(1 for s in statuses if s in OPEN_STATUSES),
    }


def _status_context(batch_id: int) -> dict[str, Any]:
    group = _batch(batch_id)
    rows = _rows(group)
    collector_wide = list(
        db().scalars(
            select(Command)
            .where(Command.batch_id == group.id, Command.meter_id.is_(None))
            .order_by(Command.id)
        )
    )
    return {
        "group": group,
        "rows": rows,
        "collector_wide": collector_wide,
        "summary": _summary(rows),
        "open": any(r.Command.status in OPEN_STATUSES for r in rows)
        or any(c.status in OPEN_STATUSES for c in collector_wide),
        "failed": [r for r in rows if r.Command.status == "rejected"],
        "operator": db().get(Operator, group.operator_id) if group.operator_id else None,
    }


@page(bp, "/batches/<int:batch_id>", "meters.read")
def batch(batch_id: int) -> Any:
    return render_template("office/board/batch.html", **_status_context(batch_id))


@page(bp, "/batches/<int:batch_id>/status", "meters.read")
def batch_status(batch_id: int) -> Any:
    """The per-meter states alone (the status page polls it while a command is on its way)."""
    return render_template("office/board/_batch_status.html", **_status_context(batch_id))


@page(bp, "/batches/<int:batch_id>/retry", "meters.command", methods=("POST",))
def batch_retry(batch_id: int) -> Any:
    """Send the batch's command again to the meters it failed on (or to one of them)."""
    group = _batch(batch_id)
    rows = _rows(group)
    only = request.form.get("meter", "")
    meters = [
        r.Command.meter_id
        for r in rows
        if r.Command.status == "rejected" and (not only or r.Command.meter_id == only)
    ]
    form = Form()
    if not meters:
        flash(_("No failed command to retry."), "error")
        return redirect(url_for("office_board.batch", batch_id=group.id), code=303)
    result = form.run(
        lambda: commands.batch(
            db(), group.op, dict(group.args or {}), {"meters": meters}, current().actor,
            reason=f"retry of batch {group.id}",
        )
    )  # fmt: skip
    if result is None:
        flash(form.message or next(iter(form.errors.values()), ""), "error")
        return redirect(url_for("office_board.batch", batch_id=group.id), code=303)
    return redirect(url_for("office_board.batch", batch_id=result[0].id), code=303)


@page(bp, "/batches", "meters.read")
def batches() -> Any:
    """设备操作: every batch, newest first, with how its commands stand."""
    stmt = select(CommandBatch)
    scope = current().scope
    if not scope.everything:
        mine = scope.meters(select(Command.batch_id).join(Meter, Meter.id == Command.meter_id))
        stmt = stmt.where(CommandBatch.id.in_(mine))
    listing = paginate(stmt, order_by=CommandBatch.id.desc())
    ids = [g.id for g in listing.rows]
    states: dict[int, dict[str, int]] = {i: {} for i in ids}
    if ids:
        for batch_id, status, n in db().execute(
            select(Command.batch_id, Command.status, func.count())
            .where(Command.batch_id.in_(ids), Command.meter_id.is_not(None))
            .group_by(Command.batch_id, Command.status)
        ):
            if batch_id is not None:
                states[batch_id][status] = int(n)
    operators = {
        o.id: o
        for o in db().scalars(
            select(Operator).where(Operator.id.in_({g.operator_id for g in listing.rows}))
        )
    }
    return render_template(
        "office/board/batches.html", listing=listing, states=states, operators=operators
    )
