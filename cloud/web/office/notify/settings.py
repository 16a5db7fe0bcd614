"""短信模板 and 通知号码: a site's wording of each kind of text in zh-CN and English (over the
built-in one; ``cloud.notify.templates.save`` checks the placeholders), and a tenant's
notification numbers (``cloud.notify.recipients``: add with language and kinds, pause, remove).

The customer page shows where a tenant's texts go; the numbers are managed here
(``/office/notify/numbers?customer=<id>``)."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, or_, select

from cloud.models import (
    Account,
    AccountMeter,
    Customer,
    Meter,
    NotifyRecipient,
    NotifyTemplate,
    Site,
)
from cloud.notify import recipients, templates
from cloud.park.board import Rows
from cloud.web.office.forms import Form
from cloud.web.office.lists import arg, int_arg, paginate
from cloud.web.office.notify import bp
from cloud.web.office.notify.labels import KINDS, LANGS
from cloud.web.office.security import current, db, page

ACCOUNT_PAGE = "office_customers.account"  # the customer page (office UI), when it exists


def _sites() -> list[Site]:
    return list(db().scalars(select(Site).order_by(Site.id)))


def _templates_page(site_id: str, form: Form | None, editing: tuple[str, str] | None) -> Any:
    own = {
        (r.kind, r.lang): r
        for r in db().scalars(select(NotifyTemplate).where(NotifyTemplate.site_id == site_id))
    }
    rows = [
        {
            "kind": kind,
            "lang": lang,
            "text": own[(kind, lang)].text
            if (kind, lang) in own
            else templates.builtin(kind, lang),
            "own": (kind, lang) in own,
            "params": templates.KINDS[kind].params,
        }
        for kind in templates.KINDS
        for lang in templates.LANGS
    ]
    return render_template(
        "office/notify/templates.html", rows=rows, sites=_sites(), site_id=site_id, form=form,
        editing=editing, kinds=KINDS, langs=LANGS,
    ), (422 if form is not None and not form.ok else 200)  # fmt: skip


@page(bp, "/templates", "settings.manage", methods=("GET", "POST"), endpoint="templates")
def templates_page() -> Any:
    site_id = (request.values.get("site") or "").strip()
    if site_id and site_id not in {s.id for s in _sites()}:
        abort(404)
    if request.method == "GET":
        return _templates_page(site_id, None, None)
    form = Form()
    kind = form.choice("kind", list(templates.KINDS))
    lang = form.choice("lang", list(templates.LANGS))
    text = form.value("text")
    if form.ok:
        form.run(lambda: templates.save(db(), site_id, kind, lang, text, by=current().actor.name))
    if form.ok:
        flash(_("Template saved.") if text else _("Back to the built-in text."), "success")
        return redirect(url_for(".templates", site=site_id or None))
    return _templates_page(site_id, form, (kind, lang))


def _customer() -> Customer:
    customer_id = int_arg("customer")
    customer = db().get(Customer, customer_id) if customer_id is not None else None
    if customer is None or not _in_scope(customer):
        abort(404)
    return customer


def _in_scope(customer: Customer) -> bool:
    """A scoped operator manages only tenants with a meter in their buildings."""
    scope = current().scope
    if scope.everything:
        return True
    meters = scope.meters(
        select(Meter.id)
        .join(AccountMeter, AccountMeter.meter_id == Meter.id)
        .join(Account, Account.id == AccountMeter.account_id)
        .where(Account.customer_id == customer.id)
    )
    return db().scalars(meters.limit(1)).first() is not None


def _numbers_page(customer: Customer, form: Form | None) -> Any:
    accounts = list(
        db().scalars(select(Account).where(Account.customer_id == customer.id).order_by(Account.id))
    )
    return render_template(
        "office/notify/numbers.html", customer=customer, accounts=accounts,
        numbers=recipients.numbers_of(db(), customer.id), form=form, kinds=KINDS, langs=LANGS,
        tenant_kinds=recipients.TENANT_KINDS,
        account_page=ACCOUNT_PAGE if ACCOUNT_PAGE in current_app.view_functions else None,
    ), (422 if form is not None and not form.ok else 200)  # fmt: skip


@page(bp, "/numbers", "accounts.read", endpoint="numbers")
def numbers_page() -> Any:
    if not arg("customer"):
        return _choose_customer()
    return _numbers_page(_customer(), None)


def _choose_customer() -> Any:
    """No tenant named: the tenants (with an account in scope) to pick from, searchable."""
    scope = current().scope
    held = scope.meters(
        select(Account.customer_id)
        .join(AccountMeter, AccountMeter.account_id == Account.id)
        .join(Meter, Meter.id == AccountMeter.meter_id)
    )
    own = (
        select(NotifyRecipient.customer_id, func.count().label("numbers"))
        .group_by(NotifyRecipient.customer_id)
        .subquery("own")
    )
    stmt: Rows = (
        select(Customer.id, Customer.name, Customer.phone, func.coalesce(own.c.numbers, 0).label("numbers"))
        .outerjoin(own, own.c.customer_id == Customer.id)
        .where(Customer.id.in_(held))
    )  # fmt: skip
    q = arg("q")[:64]
    if q:
        stmt = stmt.where(or_(Customer.name.like(f"%{q}%"), Customer.phone.like(f"{q}%")))
    listing = paginate(stmt, order_by=Customer.name, scalars=False)
    return render_template("office/notify/customers.html", listing=listing)


@page(bp, "/numbers", "accounts.manage", methods=("POST",), endpoint="numbers_change")
def numbers_change() -> Any:
    customer = _customer()
    form = Form()
    action = form.choice("action", ["add", "pause", "resume", "remove"])
    actor = current().actor
    if form.ok and action == "add":
        phone = form.text("phone", max_len=32)
        lang = form.choice("lang", list(templates.LANGS))
        kinds = [k for k in form.values("kinds") if k in recipients.TENANT_KINDS]
        note = form.text("note", required=False, max_len=200)
        if form.ok:
            form.run(lambda: recipients.add(db(), customer.id, phone, actor, lang=lang,
                                            kinds=kinds, note=note))  # fmt: skip
    elif form.ok:
        number_id = form.integer("number", low=1, high=2**62)
        mine = {n["id"] for n in recipients.numbers_of(db(), customer.id) if n["own"]}
        if form.ok and number_id not in mine:
            abort(404)
        if form.ok and number_id is not None:
            if action == "remove":
                form.run(lambda: recipients.remove(db(), number_id, actor))
            else:
                form.run(lambda: recipients.set_active(db(), number_id, action == "resume", actor))
    if form.ok:
        flash(_("Numbers saved."), "success")
        return redirect(url_for(".numbers", customer=customer.id))
    return _numbers_page(customer, form)
