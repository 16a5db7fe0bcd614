"""冲正 (F24): correct a mistaken sale. Pick the original (by default today's sales of the
operator, applied and not reversed; any day and every operator on request), give a reason,
confirm; ``cloud.money.reversals.reverse`` decides. It refuses a sale whose credit is already
consumed (the balance cannot cover it), one not applied yet, one of a closed account — the page
shows the service's reason. The collector takes the purchase back; the money counts as returned
once it confirms."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import abort, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import and_, exists, or_, select

from cloud.models import APPLIED, REJECTED, Account, Customer, Meter, Reversal, Sale, Unit
from cloud.money import receipts, reversals
from cloud.web.office.formatting import DISPLAY_ZONE
from cloud.web.office.forms import Form
from cloud.web.office.lists import arg, date_arg, day_start_ts, paginate
from cloud.web.office.sales import bp
from cloud.web.office.security import current, db, page

PERMISSION = "sales.reverse"


def _candidates() -> Any:
    """Applied sales without a reversal that is not rejected, in scope, filtered."""
    reversed_ = exists().where(and_(Reversal.sale_id == Sale.id, Reversal.status != REJECTED))
    stmt = (
        current()
        .scope.meters(select(Sale).join(Meter, Meter.id == Sale.meter_id))
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Account, Account.id == Sale.account_id)
        .outerjoin(Customer, Customer.id == Account.customer_id)
        .where(Sale.status == APPLIED, ~reversed_)
    )
    day = date_arg("day") or _today()
    if arg("all_days") != "1":
        stmt = stmt.where(
            Sale.created_ts >= day_start_ts(day),
            Sale.created_ts < day_start_ts(day + dt.timedelta(days=1)),
        )
    if arg("all_operators") != "1":
        stmt = stmt.where(Sale.operator_id == current().operator.id)
    if arg("q"):
        like = f"{arg('q')}%"
        stmt = stmt.where(
            or_(Sale.receipt_no.like(like), Sale.meter_id.like(like), Unit.number.like(like))
        )
    return stmt


def _today() -> dt.date:
    return dt.datetime.now(ZoneInfo(DISPLAY_ZONE)).date()


@page(bp, "/reversal", PERMISSION, endpoint="reversal")
def reversal_list() -> Any:
    listing = paginate(_candidates(), order_by=Sale.id.desc())
    return render_template(
        "office/sales/reversal.html", listing=listing, day=date_arg("day") or _today()
    )


def _sale_or_404(sale_id: int) -> Sale:
    sale = db().get(Sale, sale_id)
    if sale is None:
        abort(404)
    meter = (
        db().scalars(current().scope.meters(select(Meter)).where(Meter.id == sale.meter_id)).first()
    )
    if meter is None:
        abort(404)
    return sale


def _render_confirm(sale: Sale, form: Form | None, status: int = 200) -> Any:
    doc = receipts.document(db(), "sale", sale.id)
    existing = (
        db()
        .scalars(select(Reversal).where(Reversal.sale_id == sale.id, Reversal.status != REJECTED))
        .first()
    )
    return render_template(
        "office/sales/reversal_confirm.html", sale=sale, doc=doc, existing=existing, form=form
    ), status


@page(bp, "/reversal/<int:sale_id>", PERMISSION)
def reversal_form(sale_id: int) -> Any:
    return _render_confirm(_sale_or_404(sale_id), None)


@page(bp, "/reversal/<int:sale_id>", PERMISSION, methods=("POST",), endpoint="reversal_confirm")
def reversal_post(sale_id: int) -> Any:
    sale = _sale_or_404(sale_id)
    form = Form()
    reason = form.text("reason", max_len=200)
    item = None
    if form.ok:

        def reverse_and_issue() -> Any:
            rev, created = reversals.reverse(db(), sale.id, current().actor, note=reason)
            if created:
                receipts.issue(db(), "reversal", rev, current().actor, note=reason)
            return rev

        item = form.run(reverse_and_issue)  # a refusal (field ``sale``) marks the whole form
    if item is None or not form.ok:
        if form.message:
            form.message = _("Reversal refused: %(reason)s", reason=form.message)
        return _render_confirm(sale, form, 422)
    return redirect(url_for("office_sales.document", kind="reversal", record_id=item.id), code=303)
