"""The cashier's daily close (收银日结 / 交班): one local day's money per operator and payment
method — count, sales, refunds, reversals, net — so each cashier can hand over their till.

It counts exactly what the daily sales report counts (``cloud.reporting.reports.sales``), so the
two agree to the fen for the same day and site (``tests/web/test_cashier_close.py`` checks it
on sales that are pending, applied and rejected, refunds and reversals applied on another day
than they were made, and several operators and methods):

- a sale counts on the local day it was made unless the collector rejected it (a pending one
  counts, and is shown apart: the money was taken at the counter);
- a refund or a reversal counts on the day the collector confirmed it (only then was money
  paid back), under the operator who issued it; a reversal under its sale's payment method.

The conditions are the functions below (``counted_sales``, ``counted_returns``), so the report
and the close can share one definition.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from cloud.access.operators import label as operator_label
from cloud.access.scope import Scope
from cloud.localtime import day_bounds, site_zone
from cloud.models import APPLIED, REJECTED, Gateway, Meter, Operator, Refund, Reversal, Sale

FIELDS = (
    "count",
    "sales_count",
    "sales_micro_yuan",
    "pending_count",
    "pending_micro_yuan",
    "refunds_count",
    "refunds_micro_yuan",
    "reversals_count",
    "reversals_micro_yuan",
    "net_micro_yuan",
)


def counted_sales(t0: int, t1: int, meters: Any) -> tuple[ColumnElement[bool], ...]:
    """The sales a report of ``[t0, t1)`` counts: made then, not rejected, of ``meters``."""
    return (
        Sale.created_ts >= t0,
        Sale.created_ts < t1,
        Sale.status != REJECTED,
        Sale.meter_id.in_(meters),
    )


def counted_returns(model: Any, t0: int, t1: int, meters: Any) -> tuple[ColumnElement[bool], ...]:
    """The refunds or reversals a report of ``[t0, t1)`` counts: confirmed then."""
    return (
        model.status == APPLIED,
        model.resolved_ts >= t0,
        model.resolved_ts < t1,
        model.meter_id.in_(meters),
    )


def _meters(site_id: str | None, scope: Scope | None) -> Select[Any]:
    q = select(Meter.id)
    if site_id is not None:
        q = q.join(Gateway, Meter.gateway_id == Gateway.id).where(Gateway.site_id == site_id)
    return scope.meters(q) if scope is not None else q


def daily_close(
    session: Session,
    day: dt.date,
    *,
    site_id: str | None = None,
    operator_id: int | None = None,
    scope: Scope | None = None,
) -> dict[str, Any]:
    """One local day's close: a row per (operator, payment method) with activity, and totals."""
    site, zone = site_zone(session, site_id)
    t0, t1 = day_bounds(day, zone)
    meters = _meters(site, scope)
    rows: dict[tuple[int | None, str], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(FIELDS, 0)
    )

    def add(stmt: Any, column: Any, name: str) -> None:
        if operator_id is not None:
            stmt = stmt.where(column == operator_id)
        for op, method, status, count, amount in session.execute(stmt):
            row = rows[(op, method or "")]
            row[f"{name}_count"] += int(count)
            row[f"{name}_micro_yuan"] += int(amount)
            row["count"] += int(count)
            if name == "sales" and status != APPLIED:
                row["pending_count"] += int(count)
                row["pending_micro_yuan"] += int(amount)

    add(
        select(
            Sale.operator_id,
            Sale.method,
            Sale.status,
            func.count(),
            func.coalesce(func.sum(Sale.amount_micro_yuan), 0),
        )
        .where(*counted_sales(t0, t1, meters))
        .group_by(Sale.operator_id, Sale.method, Sale.status),
        Sale.operator_id,
        "sales",
    )
    add(
        select(
            Refund.operator_id,
            Refund.method,
            Refund.status,
            func.count(),
            func.coalesce(func.sum(Refund.amount_micro_yuan), 0),
        )
        .where(*counted_returns(Refund, t0, t1, meters))
        .group_by(Refund.operator_id, Refund.method, Refund.status),
        Refund.operator_id,
        "refunds",
    )
    add(
        select(
            Reversal.operator_id,
            Sale.method,
            Reversal.status,
            func.count(),
            func.coalesce(func.sum(Reversal.amount_micro_yuan), 0),
        )
        .join(Sale, Sale.id == Reversal.sale_id)
        .where(*counted_returns(Reversal, t0, t1, meters))
        .group_by(Reversal.operator_id, Sale.method, Reversal.status),
        Reversal.operator_id,
        "reversals",
    )
    names = _operator_names(session, {op for op, _m in rows if op is not None})
    out_rows = []
    totals = dict.fromkeys(FIELDS, 0)
    for (op, method), row in sorted(
        rows.items(), key=lambda kv: (names.get(kv[0][0], ""), kv[0][1])
    ):
        row["net_micro_yuan"] = (
            row["sales_micro_yuan"] - row["refunds_micro_yuan"] - row["reversals_micro_yuan"]
        )
        for name in FIELDS:
            totals[name] += row[name]
        out_rows.append({"operator_id": op, "operator": names.get(op, ""), "method": method, **row})
    return {"day": day.isoformat(), "site": site, "rows": out_rows, "totals": totals}


def _operator_names(session: Session, ids: set[int]) -> dict[int | None, str]:
    if not ids:
        return {}
    return {
        op_id: operator_label(username, name)
        for op_id, username, name in session.execute(
            select(Operator.id, Operator.username, Operator.display_name).where(
                Operator.id.in_(sorted(ids))
            )
        )
    }
