"""The tenant's monthly statement (租户月度对账单, the 付款通知书 shape): an account (by its number
or a unit's 户号) and a month: statement number, tenant, period, per meter the opening balance,
purchases, refunds, charges and the closing balance, the energy by band with its amounts, every
money line; printable (A4) and exported. ``cloud.reporting.statement`` makes it from the
ledger's rows, so opening + purchases − refunds − charges = closing to the micro-yuan."""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from cloud.reporting import bands, filters, statement
from cloud.reporting.exports import Column
from cloud.web.office import receipts as money_labels
from cloud.web.office.lists import arg
from cloud.web.office.reports import bp
from cloud.web.office.reports.common import BAND_LABELS, filter_message, now, site_today, workbook
from cloud.web.office.security import current, db, page

METER_COLUMNS = (
    Column("meter", _l("Meter no.")),
    Column("unit", _l("Unit no.")),
    Column("opening_micro_yuan", _l("Opening balance (yuan)"), "yuan"),
    Column("purchases_micro_yuan", _l("Purchases (yuan)"), "yuan"),
    Column("refunds_micro_yuan", _l("Refunds (yuan)"), "yuan"),
    Column("energy_wh", _l("Energy (kWh)"), "kwh"),
    Column("charges_micro_yuan", _l("Charges (yuan)"), "yuan"),
    Column("closing_micro_yuan", _l("Closing balance (yuan)"), "yuan"),
)
BAND_COLUMNS = (
    Column("band", _l("Band")),
    Column("energy_wh", _l("Energy (kWh)"), "kwh"),
    Column("amount_micro_yuan", _l("Amount (yuan)"), "yuan"),
)
LINE_COLUMNS = (
    Column("ts", _l("Time"), "datetime"),
    Column("kind", _l("Type")),
    Column("no", _l("Document no."), width=22),
    Column("meter", _l("Meter no.")),
    Column("method", _l("Payment method")),
    Column("in_micro_yuan", _l("In (yuan)"), "yuan"),
    Column("out_micro_yuan", _l("Out (yuan)"), "yuan"),
)
LINE_KINDS: dict[str, Any] = {
    "sale": _l("Sale"),
    "transfer_in": _l("Transfer-in"),
    "refund": _l("Refund"),
    "reversal": _l("Reversal"),
    "settlement_credit": _l("Debt written off at close"),
    "settlement_refund": _l("Refund at close"),
}


def _statement() -> tuple[dict[str, Any] | None, str | None]:
    if not arg("account"):
        return None, None
    _site, _tz, today = site_today()
    try:
        month = filters.parse_month(arg("month")) or today.replace(day=1)
    except filters.FilterError as exc:
        return None, filter_message(exc)
    account = statement.find_account(db(), current().scope, arg("account"))
    if account is None:
        return None, _(
            "No account or unit %(value)s (in your buildings). Type an account number or a unit no.",
            value=arg("account")[:40],
        )
    return statement.monthly(db(), account.id, month, scope=current().scope, now=now()), None


def _bands(found: dict[str, Any]) -> list[dict[str, Any]]:
    out = [
        {"band": str(BAND_LABELS[c]), "key": c, "energy_wh": found["bands"][c][0],
         "amount_micro_yuan": found["bands"][c][1]}
        for c in bands.CATEGORIES
        if found["bands"][c][0] or found["bands"][c][1]
    ]  # fmt: skip
    if found["totals"]["unsplit_wh"]:
        out.append({"band": str(BAND_LABELS["unsplit"]), "key": "unsplit",
                    "energy_wh": found["totals"]["unsplit_wh"], "amount_micro_yuan": 0})  # fmt: skip
    return out


def _lines(found: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {**ln, "kind": str(LINE_KINDS.get(ln["kind"], ln["kind"])),
         "method": money_labels.method(ln["method"]) if ln["method"] else "",
         "in_micro_yuan": ln["amount_micro_yuan"] if ln["sign"] > 0 else None,
         "out_micro_yuan": ln["amount_micro_yuan"] if ln["sign"] < 0 else None}
        for ln in found["lines"]
    ]  # fmt: skip


@page(bp, "/statement", "reports.read", endpoint="statement")
def statement_page() -> Any:
    found, error = _statement()
    chart = None
    if found is not None:
        rows = _bands(found)
        chart = {"kind": "bars", "unit": "kwh", "labels": [r["band"] for r in rows],
                 "series": [{"name": _("Energy"), "values": [r["energy_wh"] for r in rows]}]}  # fmt: skip
    return render_template(
        "office/reports/statement.html", st=found, error=error, chart=chart,
        band_rows=_bands(found) if found else [], lines=_lines(found) if found else [],
    ), (200 if error is None else 422)  # fmt: skip


SUMMARY_COLUMNS = (
    Column("number", _l("Statement no."), width=22),
    Column("account", _l("Account")),
    Column("customer", _l("Tenant")),
    Column("opening_micro_yuan", _l("Opening balance (yuan)"), "yuan"),
    Column("purchases_micro_yuan", _l("Purchases (yuan)"), "yuan"),
    Column("refunds_micro_yuan", _l("Refunds (yuan)"), "yuan"),
    Column("energy_wh", _l("Energy (kWh)"), "kwh"),
    Column("charges_micro_yuan", _l("Charges (yuan)"), "yuan"),
    Column("closing_micro_yuan", _l("Closing balance (yuan)"), "yuan"),
)


def _every_account() -> Any:
    """No account chosen: the month's statement of every account in scope, one line each."""
    _site, _tz, today = site_today()
    try:
        month = filters.parse_month(arg("month")) or today.replace(day=1)
    except filters.FilterError as exc:
        return render_template(
            "office/reports/statement.html", st=None, error=filter_message(exc), chart=None,
            band_rows=[], lines=[],
        ), 422  # fmt: skip
    rows: list[dict[str, Any]] = []
    sums = {c.key: 0 for c in SUMMARY_COLUMNS[3:]}
    for account_id in statement.accounts_of_month(db(), current().scope, month):
        found = statement.monthly(db(), account_id, month, scope=current().scope, now=now())
        if not found["meters"]:
            continue
        line = {"number": found["number"], "account": found["account"]["number"],
                "customer": found["account"]["customer"], **found["totals"]}  # fmt: skip
        for key in sums:
            sums[key] += line[key]
        rows.append(line)
    label = month.isoformat()[:7]
    title = _("Monthly statements %(month)s", month=label)
    return workbook(title, [(title, SUMMARY_COLUMNS, rows, sums)], [(_("Month"), arg("month"))])


@page(bp, "/statement/export", "reports.read", endpoint="statement_export")
def statement_export() -> Any:
    if not arg("account"):
        return _every_account()
    found, error = _statement()
    if found is None:
        return render_template(
            "office/reports/statement.html", st=None, error=error, chart=None, band_rows=[],
            lines=[],
        ), 422  # fmt: skip
    title = _("Monthly statement %(number)s", number=found["number"])
    shown = [(_("Account"), found["account"]["number"]), (_("Tenant"), found["account"]["customer"]),
             (_("Month"), found["month"])]  # fmt: skip
    band_rows = _bands(found)
    band_totals = {"energy_wh": found["totals"]["energy_wh"],
                   "amount_micro_yuan": found["totals"]["charges_micro_yuan"]}  # fmt: skip
    return workbook(
        title,
        [
            (_("Monthly statement"), METER_COLUMNS, found["meters"], found["totals"]),
            (_("Energy by band"), BAND_COLUMNS, band_rows, band_totals),
            (_("Money lines"), LINE_COLUMNS, _lines(found), None),
        ],
        shown,
    )
