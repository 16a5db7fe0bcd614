"""退电 (F22): credit taken back from a meter and paid to the tenant. Find the meter as for a sale;
amount (at most the balance less refunds on their way), method, a reason (required); the
refund service's verdict in a dry run; a second confirmation (the summary, then the browser's
confirm dialog on the button); ``cloud.money.refunds.refund`` with the form's key; the result
page with the A5 refund slip. The money counts as paid back once the collector confirms."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from flask_babel import gettext as _

from cloud.errors import ServiceError
from cloud.money import receipts, refunds
from cloud.money.meters import unit_numbers
from cloud.web.office.forms import Form
from cloud.web.office.receipts import COUNTER_METHODS
from cloud.web.office.sales import bp
from cloud.web.office.sales.counter import (
    amount_field,
    dry_run,
    form_key,
    new_key,
    refund_refusal,
)
from cloud.web.office.sales.lookup import Panel, find, one, panel
from cloud.web.office.security import current, db, page


@dataclass
class RefundInput:
    amount_micro_yuan: int
    method: str
    reason: str
    key: str


def _meter_or_404(meter_id: str) -> Panel:
    meter = one(current().scope, meter_id)
    if meter is None:
        abort(404)
    return panel(meter)


def _render(info: Panel | None, form: Form | None, status: int = 200, **extra: Any) -> Any:
    return render_template(
        "office/sales/refund.html",
        info=info,
        form=form,
        key=(form.value("key") if form is not None and form.value("key") else new_key()),
        methods=COUNTER_METHODS,
        unit_numbers=unit_numbers(db(), extra.get("matches") or []),
        **extra,
    ), status


@page(bp, "/refund", "sales.refund", endpoint="refund")
def refund_page() -> Any:
    q = request.args.get("q", "").strip()[:100]
    meter_id = request.args.get("meter", "").strip()[:64]
    if meter_id:
        return _render(_meter_or_404(meter_id), None, q=q)
    matches = find(current().scope, q) if q else []
    if len(matches) == 1:
        return _render(panel(matches[0]), None, q=q)
    return _render(None, None, q=q, matches=matches)


def _read(form: Form, info: Panel) -> RefundInput | None:
    amount = amount_field(form)
    method = form.choice("method", list(COUNTER_METHODS))
    reason = form.text("reason", max_len=200)
    key = form_key(form)
    if not info.sellable:
        form.fail(None, _("This meter has no open account: there is nothing to refund."))
    if not form.ok or amount is None:
        return None
    return RefundInput(amount, method, reason, key)


def _refund(info: Panel, item: RefundInput) -> tuple[Any, bool]:
    return refunds.refund(
        db(),
        info.meter.id,
        item.amount_micro_yuan,
        current().actor,
        method=item.method,
        idempotency_key=item.key,
    )


@page(bp, "/refund/<meter_id>/check", "sales.refund", methods=("POST",))
def refund_check(meter_id: str) -> Any:
    info = _meter_or_404(meter_id)
    form = Form()
    item = _read(form, info)
    if item is not None:
        refused = dry_run(lambda: _refund(info, item))
        if refused is not None:
            form.fail("amount", refund_refusal(refused, item.amount_micro_yuan, info))
    if item is None or not form.ok:
        return _render(info, form, 422)
    after = info.counter_balance_micro_yuan - item.amount_micro_yuan
    return render_template(
        "office/sales/refund_confirm.html", info=info, refund=item, balance_after=after
    )


@page(bp, "/refund/<meter_id>", "sales.refund", methods=("POST",))
def refund_confirm(meter_id: str) -> Any:
    info = _meter_or_404(meter_id)
    form = Form()
    item = _read(form, info)
    if item is None:
        return _render(info, form, 422)
    try:
        with db().begin_nested():
            record, created = _refund(info, item)
            if created:
                receipts.issue(db(), "refund", record, current().actor, note=item.reason)
    except ServiceError as exc:
        form.fail("amount", refund_refusal(exc, item.amount_micro_yuan, info))
        return _render(info, form, 422)
    return redirect(url_for("office_sales.document", kind="refund", record_id=record.id), code=303)
