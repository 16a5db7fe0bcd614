"""收银日结 / 交班: one day's money per operator and payment method (count, sales, refunds,
reversals, net), printable and exported; the figures are ``cloud.reporting.cashier``'s, which
counts what the daily sales report counts, so the two agree to the fen."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from cloud.errors import ServiceError
from cloud.models import Operator
from cloud.reporting import cashier
from cloud.reporting.exports import Column, xlsx_response
from cloud.web.office import receipts as labels
from cloud.web.office.formatting import DISPLAY_ZONE
from cloud.web.office.lists import arg, date_arg, int_arg, site_name
from cloud.web.office.sales import bp
from cloud.web.office.security import current, db, page

COLUMNS = (
    Column("operator", _l("Operator"), width=22),
    Column("method", _l("Payment method")),
    Column("count", _l("Documents"), "int"),
    Column("sales_micro_yuan", _l("Sales (yuan)"), "yuan"),
    Column("pending_micro_yuan", _l("Of which not yet applied (yuan)"), "yuan"),
    Column("refunds_micro_yuan", _l("Refunds (yuan)"), "yuan"),
    Column("reversals_micro_yuan", _l("Reversals (yuan)"), "yuan"),
    Column("net_micro_yuan", _l("Net (yuan)"), "yuan"),
)


def _close() -> tuple[dt.date, dict[str, Any] | None, str | None]:
    day = date_arg("day") or dt.datetime.now(ZoneInfo(DISPLAY_ZONE)).date()
    try:
        close = cashier.daily_close(
            db(),
            day,
            site_id=arg("site") or None,
            operator_id=int_arg("operator"),
            scope=current().scope,
        )
    except ServiceError as exc:
        return day, None, exc.message
    return day, close, None


@page(bp, "/close", "sales.read", endpoint="daily_close")
def daily_close() -> Any:
    day, close, error = _close()
    operators = list(db().scalars(select(Operator).order_by(Operator.username)))
    return render_template(
        "office/sales/close.html", day=day, close=close, error=error, operators=operators
    ), (200 if error is None else 422)


@page(bp, "/close/export", "sales.read")
def daily_close_export() -> Any:
    day, close, _error = _close()
    rows = [
        {**row, "method": labels.method(row["method"]), "operator": row["operator"] or "—"}
        for row in (close or {}).get("rows", [])
    ]
    return xlsx_response(
        _("Daily close"),
        COLUMNS,
        rows,
        site_name=site_name(),
        filters=[(_("Day"), day.isoformat()), (_("Operator"), arg("operator"))],
        totals=(close or {}).get("totals") or None,
        totals_label=_("Total"),
    )
