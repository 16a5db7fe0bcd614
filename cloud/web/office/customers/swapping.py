"""换表 (B06): the meter swap wizard and its result.

Step 1, the old meter: its balance, its last reading and when it was taken, and a 实时抄表
button (a ``read_now`` command) for a fresher one; when the meter cannot be read any more,
the register shown on it can be typed (priced at the price in force now,
``cloud.reporting.usage.price_now``). Step 2, the new meter (a free prepaid meter of the same
site) and a confirmation. Then ``cloud.money.swap.start``: the new meter joins the account at
once, the old one is settled by its collector and its balance moves to the new one. The result
page follows it (htmx) to the end, with a retry when the collector refuses to settle.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from cloud.control import commands
from cloud.models import Gateway, Meter, MeterSwap, Settlement, TransferIn, now_ts
from cloud.money import settlement, swap
from cloud.reporting import usage
from cloud.web.office.customers import bp
from cloud.web.office.customers.opening import account_in_scope
from cloud.web.office.forms import Form
from cloud.web.office.security import current, db, page


def kwh_field(form: Form, name: str) -> int | None:
    """A register value in kWh (at most 3 decimals, not negative) as integer Wh; None empty."""
    raw = form.value(name).replace(",", "")
    if not raw:
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value < 0 or value != value.quantize(Decimal("0.001")):
        form.fail(name, _("Enter a reading in kWh, like 1234.56."))
        return None
    return int(value * 1000)


def _free_meters(account: Any) -> list[Meter]:
    return list(
        db().scalars(
            current()
            .scope.meters(select(Meter))
            .join(Gateway, Gateway.id == Meter.gateway_id)
            .where(
                Meter.account_id.is_(None),
                Meter.prepaid.is_(True),
                Gateway.site_id == account.site_id,
            )
            .order_by(Meter.id)
            .limit(500)
        )
    )


def _render(account: Any, form: Form | None, status: int = 200) -> Any:
    current_ids = [link.meter_id for link in account.links if link.removed_ts is None]
    olds = list(db().scalars(select(Meter).where(Meter.id.in_(current_ids)).order_by(Meter.id)))
    chosen = (form.value("old") if form else "") or request.args.get("old", "")
    old = next((m for m in olds if m.id == chosen), olds[0] if olds else None)
    price = usage.price_now(db(), old, now_ts()) if old is not None else None
    busy = settlement.money_in_flight(db(), old.id) if old is not None else None
    return render_template(
        "office/customers/swap.html",
        account=account,
        olds=olds,
        old=old,
        free=_free_meters(account),
        price=price,
        busy=busy,
        form=form,
    ), status


@page(bp, "/accounts/<int:account_id>/swap", "accounts.manage", endpoint="swap_meter")
def swap_page(account_id: int) -> Any:
    return _render(account_in_scope(account_id), None)


@page(bp, "/accounts/<int:account_id>/swap", "accounts.manage", methods=("POST",))
def swap_confirm(account_id: int) -> Any:
    account = account_in_scope(account_id)
    form = Form()
    old_id = form.text("old", max_len=64)
    new_id = form.text("new", max_len=64)
    final_wh = kwh_field(form, "final_kwh")
    note = form.text("note", required=False, max_len=500)
    price = None
    if form.ok and final_wh is not None:
        old = db().get(Meter, old_id)
        price = usage.price_now(db(), old, now_ts()) if old is not None else None
    item = None
    if form.ok:
        item = form.run(
            lambda: swap.start(
                db(), account.id, old_id, new_id, current().actor,
                final_energy_wh=final_wh, price_micro_yuan_per_kwh=price, note=note,
            ),
            {"old_meter": "old", "new_meter": "new", "meter": "new",
             "final_energy_wh": "final_kwh", "note": "note"},
        )  # fmt: skip
    if item is None:
        return _render(account, form, 422)
    return redirect(url_for("office_customers.swap_result", swap_id=item.id), code=303)


@page(bp, "/accounts/<int:account_id>/swap/read", "meters.command", methods=("POST",))
def swap_read_now(account_id: int) -> Any:
    """实时抄表 of the old meter before the swap (its collector reads it and reports)."""
    account = account_in_scope(account_id)
    meter_id = request.form.get("old", "")
    current_ids = {link.meter_id for link in account.links if link.removed_ts is None}
    meter = db().get(Meter, meter_id) if meter_id in current_ids else None
    if meter is None:
        abort(404)
    form = Form()
    form.run(lambda: commands.issue(db(), [meter], "read_now", {}, current().actor))
    if form.ok:
        flash(_("Reading meter %(id)s: the page shows the new reading once it arrives.",
                id=meter.id), "info")  # fmt: skip
    else:
        flash(form.message or next(iter(form.errors.values()), ""), "error")
    return redirect(url_for("office_customers.swap_meter", account_id=account.id, old=meter.id))


def _swap_in_scope(swap_id: int) -> MeterSwap:
    item = db().get(MeterSwap, swap_id)
    if item is None:
        abort(404)
    account_in_scope(item.account_id)
    return item


def _progress(swap_id: int) -> dict[str, Any]:
    item = _swap_in_scope(swap_id)
    state = swap.state(db(), item)
    return {
        "item": item,
        "state": state,
        "open": state in ("closing", "moving"),
        "old": db().get(Meter, item.old_meter_id),
        "new": db().get(Meter, item.new_meter_id),
        "settlement": db().get(Settlement, item.settlement_id) if item.settlement_id else None,
        "transfer": db().get(TransferIn, item.transfer_in_id) if item.transfer_in_id else None,
    }


@page(bp, "/swaps/<int:swap_id>", "accounts.read")
def swap_result(swap_id: int) -> Any:
    return render_template("office/customers/swap_result.html", **_progress(swap_id))


@page(bp, "/swaps/<int:swap_id>/state", "accounts.read")
def swap_state(swap_id: int) -> Any:
    return render_template("office/customers/_swap_progress.html", **_progress(swap_id))


@page(bp, "/swaps/<int:swap_id>/retry", "accounts.manage", methods=("POST",))
def swap_retry(swap_id: int) -> Any:
    item = _swap_in_scope(swap_id)
    form = Form()
    form.run(lambda: swap.retry(db(), item.id, current().actor))
    if not form.ok:
        flash(form.message or next(iter(form.errors.values()), ""), "error")
    return redirect(url_for("office_customers.swap_result", swap_id=item.id), code=303)
