"""售电 (F20): the cashier's sale, from the keyboard alone.

Scan or type → Enter (``GET ?q=``: one match shows its panel and the sale form, several a list)
→ amount → Enter (``check``: the sale service's own verdict in a dry run; refused above the
per-sale limit or the hoarding cap with the reason, else the confirm step) → Enter
(``confirm``: ``cloud.money.sales.sell`` with the form's idempotency key, the receipt's facts
kept by ``cloud.money.receipts.issued``, which reads the receipt's document with them) → the
result page (``documents``), whose print button has the focus → Enter prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _

from cloud.control import commands
from cloud.errors import ServiceError
from cloud.money import receipts, sales
from cloud.money.meters import unit_numbers
from cloud.web.office.forms import Form
from cloud.web.office.receipts import COUNTER_METHODS
from cloud.web.office.sales import bp
from cloud.web.office.sales.counter import (
    amount_field,
    dry_run,
    form_key,
    new_key,
    sale_refusal,
)
from cloud.web.office.sales.documents import result_page
from cloud.web.office.sales.lookup import Panel, find, one, one_id, panel
from cloud.web.office.security import current, db, page

QUICK_AMOUNTS_YUAN = (50, 100, 200, 500)


@dataclass
class SaleInput:
    amount_micro_yuan: int
    method: str
    tendered_micro_yuan: int | None
    note: str
    key: str

    @property
    def change_micro_yuan(self) -> int | None:
        if self.tendered_micro_yuan is None:
            return None
        return self.tendered_micro_yuan - self.amount_micro_yuan


def _meter_or_404(meter_id: str) -> Panel:
    meter = one(current().scope, meter_id)
    if meter is None:
        abort(404)
    return panel(meter)


def _render(info: Panel | None, form: Form | None, status: int = 200, **extra: Any) -> Any:
    return render_template(
        "office/sales/sell.html",
        info=info,
        form=form,
        key=(form.value("key") if form is not None and form.value("key") else new_key()),
        methods=COUNTER_METHODS,
        quick=QUICK_AMOUNTS_YUAN,
        unit_numbers=unit_numbers(db(), extra.get("matches") or []),
        **extra,
    ), status


@page(bp, "/sell", "sales.sell", endpoint="sell")
def sell_page() -> Any:
    q = request.args.get("q", "").strip()[:100]
    meter_id = request.args.get("meter", "").strip()[:64]
    if meter_id:
        return _render(_meter_or_404(meter_id), None, q=q)
    matches = find(current().scope, q) if q else []
    if len(matches) == 1:
        return _render(panel(matches[0]), None, q=q)
    return _render(None, None, q=q, matches=matches)


@page(bp, "/sell/matches", "sales.read")
def sell_matches() -> Any:
    """The search's suggestions while typing (htmx), linking to the sale or refund screen."""
    q = request.args.get("q", "").strip()[:100]
    endpoint = request.args.get("target", "")
    if endpoint not in ("office_sales.sell", "office_sales.refund"):
        endpoint = "office_sales.sell"
    matches = find(current().scope, q) if q else []
    return render_template(
        "office/sales/_matches.html",
        q=q,
        matches=matches,
        endpoint=endpoint,
        unit_numbers=unit_numbers(db(), matches),
    )


def _read(form: Form, info: Panel | None = None) -> SaleInput | None:
    """The sale form's fields; with ``info`` (the check step) also whether the meter can be
    sold at all (the confirm step leaves that to the sale service)."""
    amount = amount_field(form)
    method = form.choice("method", list(COUNTER_METHODS))
    tendered = form.yuan("tendered", required=False) if method == "cash" else None
    note = form.text("note", required=False, max_len=200)
    key = form_key(form)
    if amount is not None and tendered is not None and tendered < amount:
        form.fail("tendered", _("The amount tendered is less than the amount to sell."))
    if info is not None and not info.sellable:
        form.fail(None, _("This meter has no open account: open one first (Customer management)."))
    if not form.ok or amount is None:
        return None
    return SaleInput(amount, method, tendered, note, key)


def _sell(meter_id: str, sale_in: SaleInput) -> tuple[Any, bool]:
    return sales.sell(
        db(),
        meter_id,
        sale_in.amount_micro_yuan,
        sale_in.method,
        current().actor,
        idempotency_key=sale_in.key,
    )


@page(bp, "/sell/<meter_id>/check", "sales.sell", methods=("POST",))
def sell_check(meter_id: str) -> Any:
    """Step 2: the sale service's verdict without selling; the confirm step if it would sell."""
    info = _meter_or_404(meter_id)
    form = Form()
    sale_in = _read(form, info)
    if sale_in is not None:
        refused = dry_run(lambda: _sell(info.meter.id, sale_in))
        if refused is not None:
            form.fail("amount", sale_refusal(refused, sale_in.amount_micro_yuan, info))
    if sale_in is None or not form.ok:
        return _render(info, form, 422)
    after = info.counter_balance_micro_yuan + sale_in.amount_micro_yuan
    return render_template(
        "office/sales/sell_confirm.html", info=info, sale=sale_in, balance_after=after
    )


@page(bp, "/sell/<meter_id>", "sales.sell", methods=("POST",))
def sell_confirm(meter_id: str) -> Any:
    """Step 3: sell (once per key), keep the receipt's facts, show the result. The cashier's
    hot path: only the meter's scope, the sale and the receipt run here; the panel is read
    only to word a refusal. An operator who sees the whole park needs no scope check: the sale
    refuses a meter that does not exist, and that refusal is the same 404."""
    scope = current().scope
    if not scope.everything and one_id(scope, meter_id) is None:
        abort(404)
    form = Form()
    sale_in = _read(form)
    if sale_in is None:
        return _render(_meter_or_404(meter_id), form, 422)
    htmx = request.headers.get("HX-Request") == "true"
    doc = None
    try:
        sale, created = _sell(meter_id, sale_in)
        if created:
            # The receipt kept and its document read in one statement (``issued``: no more
            # than ``issue`` reads; the plain form's redirect leaves the document unused).
            doc = receipts.issued(
                db(),
                "sale",
                sale,
                current().actor,
                tendered_micro_yuan=sale_in.tendered_micro_yuan,
                note=sale_in.note,
            )
    except ServiceError as exc:
        db().rollback()  # the refused sale took a purchase number: give it back (write nothing)
        info = _meter_or_404(meter_id)
        form.fail("amount", sale_refusal(exc, sale_in.amount_micro_yuan, info))
        return _render(info, form, 422)
    target = url_for("office_sales.document", kind="sale", record_id=sale.id)
    if htmx:
        # The confirm form posts through htmx: answer with the result page's <main> (the
        # header and menu are on the page already) and put its own URL in the address bar (a
        # reload GETs the whole page; nothing is sent twice). Its document is read in the
        # sale's own transaction (what is committed next; no second session: a new sale's
        # with its receipt, a replayed key's as it was kept) and the sale is committed before
        # the page renders, so the next cashier's sale need not wait for the rendering
        # (SQLite takes one writer at a time).
        if doc is None:
            doc = receipts.document(db(), "sale", sale.id)
        db().commit()
        return result_page(doc, target), 200, {"HX-Push-Url": target}
    return redirect(target, code=303)


@page(bp, "/sell/<meter_id>/command", "meters.command", methods=("POST",))
def meter_command(meter_id: str) -> Any:
    """拉闸 / 合闸 from the sale screen (the same command service as the meter board)."""
    info = _meter_or_404(meter_id)
    form = Form()
    action = form.choice("action", ["trip", "close"])
    if form.ok:
        form.run(lambda: commands.issue(db(), [info.meter], action, {}, current().actor))
    if form.ok:
        flash(
            _("Trip sent to meter %(meter)s.", meter=info.meter.id)
            if action == "trip"
            else _("Close sent to meter %(meter)s.", meter=info.meter.id),
            "info",
        )
    else:
        flash(form.message or next(iter(form.errors.values()), ""), "error")
    return redirect(url_for("office_sales.sell", meter=info.meter.id))
