"""售电记录 / 退电记录 (F21, F23): every money document — sales, refunds, reversals, transfers-in,
settlements — filtered by date, type, operator, method, state and unit / meter / document
number / tenant, all in the URL; pages with the total count, money totals over the whole
filtered set (rejected documents count nothing), reprint (补打), and the whole filtered set
exported to ``.xlsx``. The query is ``cloud.money.documents.statement``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, select

from cloud.access.operators import label as operator_label
from cloud.models import Operator
from cloud.money import documents
from cloud.reporting.exports import Column, xlsx_response
from cloud.web.office import receipts as labels
from cloud.web.office.lists import (
    arg,
    date_arg,
    day_start_ts,
    every_row,
    int_arg,
    paginate,
    site_name,
)
from cloud.web.office.sales import bp
from cloud.web.office.security import current, db, page

TOTALS = ("sales_micro_yuan", "refunds_micro_yuan", "reversals_micro_yuan")
REFUND_KINDS = ("refund", "reversal")
COLUMNS = (
    Column("number", _l("Document no."), width=22),
    Column("kind", _l("Type")),
    Column("created_ts", _l("Time"), "datetime"),
    Column("unit", _l("Unit no.")),
    Column("tenant", _l("Tenant")),
    Column("meter", _l("Meter no.")),
    Column("amount", _l("Amount (yuan)"), "yuan"),
    Column("before", _l("Balance before (yuan)"), "yuan"),
    Column("after", _l("Balance after (yuan)"), "yuan"),
    Column("method", _l("Payment method")),
    Column("operator", _l("Operator")),
    Column("status", _l("Status")),
    Column("original", _l("Original document no."), width=22),
    Column("note", _l("Reason or remark"), width=30),
    Column("prints", _l("Prints"), "int"),
    Column("sales_micro_yuan", _l("Sales (yuan)"), "yuan"),
    Column("refunds_micro_yuan", _l("Refunds (yuan)"), "yuan"),
    Column("reversals_micro_yuan", _l("Reversals (yuan)"), "yuan"),
)


def _filter(default_kinds: tuple[str, ...]) -> documents.Filter:
    kind = arg("kind")
    kinds = (kind,) if kind in documents.KINDS else default_kinds
    start, end = date_arg("from"), date_arg("to")
    return documents.Filter(
        kinds=kinds,
        start_ts=day_start_ts(start) if start else None,
        end_ts=day_start_ts(end + dt.timedelta(days=1)) if end else None,
        operator_id=int_arg("operator"),
        method=arg("method") if arg("method") in labels.METHODS else "",
        status=arg("status") if arg("status") in documents.STATUSES else "",
        q=arg("q")[:100],
    )


def _statement(default_kinds: tuple[str, ...]) -> Select[Any]:
    return documents.statement(_filter(default_kinds), current().scope)


def _list(default_kinds: tuple[str, ...], title: str, export_endpoint: str) -> Any:
    stmt = _statement(default_kinds)
    cols = stmt.selected_columns
    listing = paginate(
        stmt,
        order_by=documents.order(stmt),
        totals={name: cols[name] for name in TOTALS},
        scalars=False,
    )
    operators = list(db().scalars(select(Operator).order_by(Operator.username)))
    return render_template(
        "office/sales/records.html",
        listing=listing,
        operators=operators,
        number=documents.number,
        title=title,
        export_endpoint=export_endpoint,
        kinds=documents.KINDS,
        statuses=documents.STATUSES,
    )


@page(bp, "/records", "sales.read", endpoint="records")
def records_list() -> Any:
    return _list((), _("Sales records"), "office_sales.records_export")


@page(bp, "/refund-records", "sales.read", endpoint="refund_records")
def refund_records_list() -> Any:
    return _list(REFUND_KINDS, _("Refund records"), "office_sales.refund_records_export")


def _export(default_kinds: tuple[str, ...], title: str) -> Any:
    stmt = _statement(default_kinds)
    totals = dict.fromkeys(TOTALS, 0)

    def rows() -> Any:
        for row in every_row(stmt, order_by=documents.order(stmt), scalars=False):
            for name in TOTALS:
                totals[name] += getattr(row, name)
            yield {
                "number": documents.number(row),
                "kind": labels.kind(row.kind),
                "created_ts": row.created_ts,
                "unit": row.unit,
                "tenant": row.tenant,
                "meter": row.meter_id,
                "amount": row.amount_micro_yuan,
                "before": row.balance_before_micro_yuan,
                "after": row.balance_after_micro_yuan,
                "method": labels.method(row.method),
                "operator": operator_label(row.operator_username, row.operator_name),
                "status": labels.status(row.status)
                + (f" / {_('reversed')}" if row.reversed else ""),
                "original": row.original,
                "note": row.note or row.reason,
                "prints": row.prints or 0,
                **{name: getattr(row, name) for name in TOTALS},
            }

    # The totals row is written after the rows; the exporter reads it then.
    filters = [
        (_("From"), arg("from")),
        (_("To"), arg("to")),
        (_("Type"), labels.kind(arg("kind")) if arg("kind") else ""),
        (_("Operator"), arg("operator")),
        (_("Payment method"), labels.method(arg("method")) if arg("method") else ""),
        (_("Status"), labels.status(arg("status")) if arg("status") else ""),
        (_("Search"), arg("q")),
    ]
    return xlsx_response(
        title,
        COLUMNS,
        rows(),
        site_name=site_name(),
        filters=filters,
        totals=totals,
        totals_label=_("Total (rejected documents count nothing)"),
    )


@page(bp, "/records/export", "sales.read")
def records_export() -> Any:
    return _export((), _("Sales records"))


@page(bp, "/refund-records/export", "sales.read")
def refund_records_export() -> Any:
    return _export(REFUND_KINDS, _("Refund records"))
