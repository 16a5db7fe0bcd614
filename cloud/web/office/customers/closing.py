"""销户 (F16): close a tenant's account. The review shows each meter's balance (with money
still on its way), its last reading and what the settlement will likely be (退款 / 补缴 /
无费用); closing is ``settlement.close_account``, the service the API's ``POST
/accounts/{id}/close`` calls, with a receipt per settlement (``receipts.issue``). The result
page follows each meter's settlement (htmx) until its collector has settled it: the final
amounts are the collector's, printed on the A5 settlement slip (the cashier's printout,
``office_sales.document_printout``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import flash, redirect, render_template, url_for
from flask_babel import gettext as _
from sqlalchemy import select

from cloud.models import PENDING, Meter, Settlement
from cloud.money import receipts, settlement
from cloud.web.office.customers import bp
from cloud.web.office.customers.opening import account_in_scope
from cloud.web.office.forms import Form
from cloud.web.office.security import current, db, page


@dataclass
class Review:
    meter: Meter
    counter_balance_micro_yuan: int  # the mirror with money still on its way
    busy: str | None  # money waiting for the collector: the close is refused until it lands

    @property
    def outcome(self) -> str:
        if self.counter_balance_micro_yuan > 0:
            return "refund"
        if self.counter_balance_micro_yuan < 0:
            return "arrears"
        return "none"


def _review(account_id: int) -> tuple[Any, list[Review]]:
    account = account_in_scope(account_id)
    ids = [link.meter_id for link in account.links if link.removed_ts is None]
    meters = list(db().scalars(select(Meter).where(Meter.id.in_(ids)).order_by(Meter.id)))
    rows = [
        Review(m, receipts.counter_balance(db(), m), settlement.money_in_flight(db(), m.id))
        for m in meters
    ]
    return account, rows


def _close(account_id: int) -> Any:
    """Close (or retry the refused meters of) the account, with a slip per new settlement."""
    actor = current().actor
    closed = settlement.close_account(db(), account_id, actor)
    for item in db().scalars(
        select(Settlement).where(Settlement.account_id == account_id, Settlement.status == PENDING)
    ):
        receipts.issue(db(), "settlement", item, actor)
    return closed


@page(bp, "/accounts/<int:account_id>/close", "accounts.manage", endpoint="close_account")
def close_review(account_id: int) -> Any:
    account, rows = _review(account_id)
    return render_template("office/customers/close.html", account=account, rows=rows, form=None)


@page(bp, "/accounts/<int:account_id>/close", "accounts.manage", methods=("POST",))
def close_confirm(account_id: int) -> Any:
    account, rows = _review(account_id)
    form = Form()

    if form.run(lambda: _close(account.id)) is None:
        return render_template(
            "office/customers/close.html", account=account, rows=rows, form=form
        ), 422
    flash(_("Closing account %(number)s: each meter is settled by its collector.",
            number=account.number), "info")  # fmt: skip
    return redirect(url_for("office_customers.close_result", account_id=account.id), code=303)


def _settlements(account_id: int) -> dict[str, Any]:
    account = account_in_scope(account_id)
    items = list(
        db().scalars(
            select(Settlement).where(Settlement.account_id == account.id).order_by(Settlement.id)
        )
    )
    latest: dict[str, Settlement] = {}
    for item in items:  # a retried meter shows its newest settlement
        latest[item.meter_id] = item
    shown = list(latest.values())
    return {
        "account": account,
        "settlements": shown,
        "open": any(s.status == PENDING for s in shown),
        "refund_total": sum(s.refund_due_micro_yuan or 0 for s in shown),
        "debt_total": sum(s.debt_owed_micro_yuan or 0 for s in shown),
    }


@page(bp, "/accounts/<int:account_id>/close/result", "accounts.read")
def close_result(account_id: int) -> Any:
    return render_template("office/customers/close_result.html", **_settlements(account_id))


@page(bp, "/accounts/<int:account_id>/close/state", "accounts.read")
def close_state(account_id: int) -> Any:
    return render_template("office/customers/_settlements.html", **_settlements(account_id))


@page(bp, "/accounts/<int:account_id>/close/retry", "accounts.manage", methods=("POST",))
def close_retry(account_id: int) -> Any:
    """The collector refused a meter's settlement: ask it again (the others are left)."""
    account = account_in_scope(account_id)
    form = Form()

    if form.run(lambda: _close(account.id)) is None:
        flash(form.message or next(iter(form.errors.values()), ""), "error")
    return redirect(url_for("office_customers.close_result", account_id=account.id), code=303)
