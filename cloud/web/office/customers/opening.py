"""开户 (F14): the open-account wizard, its result page, and a meter added to an account later.

Steps: the unit (户号) → its meters → the tenant → tariff and thresholds (the site's defaults
filled in) → an optional transfer-in and a first purchase per meter → the recap → open. Each
step posts everything chosen so far (hidden fields) and the server checks every step again:
nothing is written until the last one, which runs in one savepoint:

- values that differ from the site's defaults become the meter's own (``places.edit_meter``;
  the same checks the collector makes, ``meter_settings.check_for_meter``, ran at their step),
- ``accounts.open_account`` (the service the API's ``POST /accounts`` calls: prices and
  thresholds sent first, then ``open_account``, then the transfers-in),
- each first purchase through ``sales.sell`` with its receipt (``receipts.issue``).

A refusal marks its field and leaves nothing behind. The result page follows every command
of the new account (htmx) until its collector has answered, with the receipts to print.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from sqlalchemy import or_, select

from cloud.control import meter_settings
from cloud.control.lifecycle import OPEN_STATUSES
from cloud.errors import ServiceError
from cloud.models import Account, Command, Gateway, Meter, Sale, SiteDefaults, Tariff, Unit
from cloud.money import accounts, receipts, sales
from cloud.park import places
from cloud.values import check_phone
from cloud.web.office.customers import bp
from cloud.web.office.customers.wizard import STEPS, Wizard
from cloud.web.office.forms import Form, translate
from cloud.web.office.lists import arg
from cloud.web.office.receipts import COUNTER_METHODS
from cloud.web.office.security import can, current, db, page

THRESHOLDS = {
    "alarm1": "alarm1_micro_yuan",
    "alarm2": "alarm2_micro_yuan",
    "hoarding_cap": "hoarding_cap_micro_yuan",
}


def _unit(unit_id: int | None) -> Unit:
    if unit_id is None:
        abort(404)
    found = db().scalars(current().scope.units(select(Unit)).where(Unit.id == unit_id)).first()
    if found is None:
        abort(404)
    return found


def _free_meters(unit: Unit) -> list[Meter]:
    return list(
        db().scalars(
            select(Meter)
            .where(Meter.unit_id == unit.id, Meter.prepaid.is_(True))
            .order_by(Meter.id)
        )
    )


def _defaults(unit: Unit) -> dict[str, int | None]:
    found = db().get(SiteDefaults, unit.site_id)
    return {name: getattr(found, column, None) for name, column in THRESHOLDS.items()}


def _units_to_open(q: str) -> list[Unit]:
    free = select(Meter.unit_id).where(Meter.account_id.is_(None), Meter.prepaid.is_(True))
    stmt = current().scope.units(select(Unit)).where(Unit.id.in_(free))
    if q:
        stmt = stmt.where(or_(Unit.number.like(f"{q}%"), Unit.name.like(f"%{q}%")))
    return list(db().scalars(stmt.order_by(Unit.number).limit(200)))


@page(bp, "/open", "accounts.manage", endpoint="open_account")
def open_start() -> Any:
    """Steps 1 and 2 (GET): pick the unit, then its meters."""
    unit_id = request.args.get("unit", "")
    if not unit_id.isdigit():
        q = arg("q")[:64]
        return render_template(
            "office/customers/open.html", step="unit", units=_units_to_open(q), q=q, w=None
        )
    unit = _unit(int(unit_id))
    w = Wizard(Form({}), unit, _free_meters(unit), _defaults(unit))
    return _render("meters", w, _new_key())


def _render(step: str, w: Wizard, key: str, status: int = 200) -> Any:
    tariffs = list(db().scalars(select(Tariff).order_by(Tariff.id)))
    return render_template(
        "office/customers/open.html", step=step, w=w, key=key[:40], tariffs=tariffs
    ), status


def _new_key() -> str:
    return secrets.token_urlsafe(12)


def _read(form: Form) -> Wizard:
    unit_raw = form.value("unit")
    unit = _unit(int(unit_raw) if unit_raw.isdigit() else None)
    return Wizard(form, unit, _free_meters(unit), _defaults(unit))


def _check_tenant(w: Wizard) -> None:
    form = w.form
    form.text("name", max_len=200)
    try:
        check_phone(form.value("phone") or None, "phone")
    except ServiceError:
        form.fail("phone", _("Enter a phone number: digits, an optional leading +."))
    form.text("id_number", required=False, max_len=64)
    form.text("email", required=False, max_len=200)
    form.text("note", required=False, max_len=1000)


def _own_values(w: Wizard) -> dict[str, Any]:
    """What the operator changed from the site's defaults (the meters' own values)."""
    form = w.form
    own: dict[str, Any] = {}
    tariff = form.value("tariff_id")
    if tariff:
        if db().get(Tariff, tariff) is None:
            form.fail("tariff_id", _("Choose one of the options."))
        own["tariff_id"] = tariff
    for name, column in THRESHOLDS.items():
        value = form.yuan(name, required=False)
        if value is not None and value != w.defaults.get(name):
            own[column] = value
    return own


def _check_tariff(w: Wizard) -> None:
    own = _own_values(w)
    if not w.form.ok or not own:
        return
    back = {"alarm1_micro_yuan": "alarm1", "alarm2_micro_yuan": "alarm2",
            "hoarding_cap_micro_yuan": "hoarding_cap", "tariff_id": "tariff_id"}  # fmt: skip
    for meter in w.chosen:
        try:
            meter_settings.check_for_meter(db(), meter, own)
        except ServiceError as exc:
            setting = (exc.field or "").removeprefix("args.")
            w.form.fail(back.get(setting, "alarm1"), translate(exc.message))
            return


def _check_money(w: Wizard) -> None:
    form = w.form
    any_purchase = False
    for meter in w.chosen:
        form.yuan(f"transfer_{meter.id}", required=False)
        if form.yuan(f"purchase_{meter.id}", required=False):
            any_purchase = True
    form.text("transfer_source", required=False, max_len=200)
    if any_purchase:
        if not can("sales.sell"):
            form.fail(None, _("Your role may not sell: leave the first purchase empty."))
        form.choice("method", list(COUNTER_METHODS))


CHECKS = {"meters": None, "tenant": _check_tenant, "tariff": _check_tariff, "money": _check_money}


@page(bp, "/open", "accounts.manage", methods=("POST",), endpoint="open_step")
def open_step() -> Any:
    """Steps 3 to 6 (POST): check every step so far, then show the next (or open)."""
    form = Form()
    done = form.value("step")
    if done not in (*CHECKS, "recap"):
        abort(400)
    opened = session.get("opened_accounts", {})
    key = form.value("key")[:40]
    if done == "recap" and key in opened:  # a second click of 开户: the account opened once
        target = url_for("office_customers.open_result", account_id=opened[key])
        return redirect(target, code=303)
    w = _read(form)
    back = form.value("back")
    if back in STEPS:  # the 上一步 button: show that step again, nothing checked or lost
        return _render(back, w, form.value("key"))
    if not w.chosen:
        form.fail("meter", _("Choose at least one meter of the unit."))
        return _render("meters", w, form.value("key") or _new_key(), 422)
    for step in STEPS[1 : STEPS.index(done) + 1]:
        check = CHECKS.get(step)
        if check is not None:
            check(w)
        if not form.ok:
            return _render(step, w, form.value("key"), 422)
    if done != "recap":
        following = STEPS[STEPS.index(done) + 1]
        return _render(following, w, form.value("key"))
    return _open(w)


def _open(w: Wizard) -> Any:
    form, key = w.form, w.form.value("key")[:40]
    opened = session.get("opened_accounts", {})
    own = _own_values(w)
    actor = current().actor
    chosen = w.chosen  # before opening: an opened meter is no longer free

    def run() -> Account:
        s = db()
        for meter in chosen:
            if own:
                places.edit_meter(s, meter, actor, **own)
        customer = {
            "name": form.value("name"),
            "phone": form.value("phone") or None,
            "id_number": form.value("id_number") or None,
            "email": form.value("email") or None,
            "note": form.value("note"),
        }
        specs = [
            {
                "meter": m.id,
                "transfer_in_micro_yuan": form.yuan(f"transfer_{m.id}", required=False) or 0,
                "transfer_source": form.value("transfer_source") or None,
            }
            for m in chosen
        ]
        account = accounts.open_account(s, customer, specs, actor, note=form.value("note"))
        # The first purchases are part of the opening: they carry its time (the result page
        # finds them by it, also when the opening took past a second's boundary).
        stamp = account.opened_ts
        for m in chosen:
            amount = form.yuan(f"purchase_{m.id}", required=False)
            if amount:
                sale, created = sales.sell(s, m.id, amount, form.value("method"), actor,
                                           idempotency_key=f"open-{key}-{m.id}",
                                           now=stamp)  # fmt: skip
                if created:
                    receipts.issue(s, "sale", sale, actor, now=stamp)
        return account

    account = form.run(run, _field_map(w))
    if account is None:  # shown on the step that asks for the refused value
        return _render(_step_of(next(iter(form.errors), "")), w, key, 422)
    session["opened_accounts"] = {**dict(list(opened.items())[-9:]), key: account.id}
    flash(_("Account %(number)s opened.", number=account.number), "success")
    return redirect(url_for("office_customers.open_result", account_id=account.id), code=303)


def _step_of(field: str) -> str:
    for step in ("tenant", "tariff"):
        if field in Wizard.STEP_FIELDS[step]:
            return step
    if field.startswith(("transfer", "purchase_")) or field == "method":
        return "money"
    return "meters" if field == "meter" else "recap"


def _field_map(w: Wizard) -> dict[str, str]:
    """Service fields → the wizard's fields (a refusal marks the right one)."""
    out = {"customer.name": "name", "customer.phone": "phone", "customer.id_number": "id_number",
           "customer.email": "email", "note": "note", "alarm1_micro_yuan": "alarm1",
           "alarm2_micro_yuan": "alarm2", "hoarding_cap_micro_yuan": "hoarding_cap",
           "tariff_id": "tariff_id", "method": "method"}  # fmt: skip
    for i, m in enumerate(w.chosen):
        out[f"meters[{i}].transfer_in_micro_yuan"] = f"transfer_{m.id}"
    out["amount_micro_yuan"] = f"purchase_{w.chosen[0].id}" if w.chosen else "meter"
    return out


def account_in_scope(account_id: int) -> Account:
    """The account, if one of its meters (now or before) is in the operator's scope; else 404."""
    account = db().get(Account, account_id)
    if account is None:
        abort(404)
    scope = current().scope
    if not scope.everything:
        ids = [link.meter_id for link in account.links]
        visible = db().scalars(scope.meters(select(Meter.id)).where(Meter.id.in_(ids))).first()
        if visible is None:
            abort(404)
    return account


def _progress(account: Account) -> dict[str, Any]:
    ids = [link.meter_id for link in account.links]
    rows = list(
        db().scalars(
            select(Command)
            .where(Command.meter_id.in_(ids), Command.created_ts >= account.opened_ts)
            .order_by(Command.id)
            .limit(200)
        )
    )
    sales_made = list(
        db().scalars(
            select(Sale)
            .where(Sale.account_id == account.id, Sale.created_ts == account.opened_ts)
            .order_by(Sale.id)
        )
    )
    return {
        "account": account,
        "meters": {m.id: m for m in db().scalars(select(Meter).where(Meter.id.in_(ids)))},
        "commands": rows,
        "open": any(c.status in OPEN_STATUSES for c in rows),
        "purchases": sales_made,
    }


@page(bp, "/open/result/<int:account_id>", "accounts.read")
def open_result(account_id: int) -> Any:
    return render_template(
        "office/customers/open_result.html", **_progress(account_in_scope(account_id))
    )


@page(bp, "/open/result/<int:account_id>/state", "accounts.read")
def open_result_state(account_id: int) -> Any:
    """The commands' states alone (polled until every collector has answered)."""
    return render_template(
        "office/customers/_open_progress.html", **_progress(account_in_scope(account_id))
    )


@page(bp, "/accounts/<int:account_id>/meters", "accounts.manage", methods=("GET", "POST"))
def add_meter(account_id: int) -> Any:
    """Add a meter to an open account (F14), with an optional transfer-in."""
    account = account_in_scope(account_id)
    free = list(
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
    form = Form() if request.method == "POST" else None
    if form is not None:
        meter_id = form.choice("meter", [m.id for m in free])
        amount = form.yuan("transfer", required=False) or 0
        source = form.text("transfer_source", required=False, max_len=200)
        if form.ok:
            form.run(
                lambda: accounts.add_meter(
                    db(), account.id, meter_id, current().actor,
                    transfer_in_micro_yuan=amount, transfer_source=source,
                ),
                {"meter": "meter", "transfer_in_micro_yuan": "transfer"},
            )  # fmt: skip
        if form.ok:
            flash(_("Meter %(meter)s added to account %(number)s.", meter=meter_id,
                    number=account.number), "success")  # fmt: skip
            return redirect(url_for("office_customers.account", account_id=account.id), code=303)
    status = 422 if form is not None else 200
    return render_template(
        "office/customers/add_meter.html", account=account, free=free, form=form
    ), status
