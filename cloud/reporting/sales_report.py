"""售电日报 / 月报 / 年报 (F26, F27, F28): money per local day, month or year, by payment method
and by operator: sales, refunds, reversals and net (sales − refunds − reversals).

What counts, and on which day, is ``cloud.reporting.cashier``'s definition (``counted_sales``,
``counted_returns``), so the daily report and the cashier's daily close agree to the fen: a sale
counts on the day it was made unless the collector rejected it (one not applied yet counts and is
shown apart), a refund or a reversal on the day the collector confirmed it; a reversal under its
sale's payment method. Buckets are the site's local days, months or years: every bucket of the
range is a row (zeros included), so a chart shows the quiet days too; the sum of a month's days
is the month, the sum of a year's months the year.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from cloud.access.operators import label as operator_label
from cloud.access.scope import EVERYTHING, Scope
from cloud.errors import InvalidError
from cloud.localtime import day_bounds, site_zone
from cloud.models import APPLIED, Operator, Refund, Reversal, Sale
from cloud.reporting import bands, filters
from cloud.reporting.cashier import counted_returns, counted_sales

PERIODS = ("day", "month", "year")
_EPOCH = dt.date(1970, 1, 1)
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


def bucket_starts(period: str, start: dt.date, end: dt.date) -> list[dt.date]:
    """The first day of every bucket that meets ``start..end`` (the first clipped to start)."""
    out = [start]
    day = start
    while True:
        if period == "day":
            day = day + dt.timedelta(days=1)
        elif period == "month":
            day = dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
        else:
            day = dt.date(day.year + 1, 1, 1)
        if day > end:
            return out
        out.append(day)


def bucket_key(period: str, day: dt.date) -> str:
    if period == "day":
        return day.isoformat()
    if period == "month":
        return f"{day.year:04d}-{day.month:02d}"
    return f"{day.year:04d}"


def _blank() -> dict[str, int]:
    return dict.fromkeys(FIELDS, 0)


def _add(row: dict[str, int], kind: str, n: int, amount: int, pending: bool) -> None:
    row["count"] += n
    row[f"{kind}_count"] += n
    row[f"{kind}_micro_yuan"] += amount
    if pending:
        row["pending_count"] += n
        row["pending_micro_yuan"] += amount
    sign = 1 if kind == "sales" else -1
    row["net_micro_yuan"] += sign * amount


def compute(
    session: Session,
    period: str,
    start: dt.date,
    end: dt.date,
    *,
    site_id: str | None = None,
    meters: Select[Any] | None = None,
) -> dict[str, Any]:
    """The report over local dates ``start..end`` for ``meters`` (a statement of meter ids;
    default every meter of the site). No range check here: callers check their own bounds."""
    if period not in PERIODS:
        raise InvalidError(f"period must be day, month or year; got {period!r}", "period")
    site, zone = site_zone(session, site_id)
    starts = bucket_starts(period, start, end)
    edges = [day_bounds(d, zone)[0] for d in starts]
    t0, t1 = edges[0], day_bounds(end, zone)[1]
    ids = meters if meters is not None else filters.meter_ids(EVERYTHING, site)
    rows = [_blank() for _ in starts]
    methods: dict[str, dict[str, int]] = defaultdict(_blank)
    operators: dict[int | None, dict[str, int]] = defaultdict(_blank)
    totals = _blank()
    # Counted in the database, a group per local day, method, operator and state when the
    # site's UTC offset is one over the range (China's always is); else per record.
    rules = bands.zone_rules(zone, t0, t1)
    offset = rules[0][1] if len(rules) == 1 else None
    day_starts = [(d - _EPOCH).days for d in starts]

    def key(column: Any) -> Any:
        return (column + offset) // 86400 if offset is not None else column

    def bucket(k: int) -> int:
        if offset is not None:
            return bisect.bisect_right(day_starts, int(k)) - 1
        return bisect.bisect_right(edges, int(k)) - 1

    def count(found: Any, kind: str, pending_of: Any = None) -> None:
        for k, method, op, status, n, amount in found:
            i = bucket(k)
            pending = pending_of is not None and status != APPLIED
            for row in (rows[i], methods[method or ""], operators[op], totals):
                _add(row, kind, int(n), int(amount), pending)

    sale_key = key(Sale.created_ts)
    count(
        session.execute(
            select(sale_key, Sale.method, Sale.operator_id, Sale.status, func.count(),
                   func.sum(Sale.amount_micro_yuan))
            .where(*counted_sales(t0, t1, ids))
            .group_by(sale_key, Sale.method, Sale.operator_id, Sale.status)
        ),
        "sales",
        pending_of=True,
    )  # fmt: skip
    refund_key = key(Refund.resolved_ts)
    count(
        session.execute(
            select(refund_key, Refund.method, Refund.operator_id, Refund.status, func.count(),
                   func.sum(Refund.amount_micro_yuan))
            .where(*counted_returns(Refund, t0, t1, ids))
            .group_by(refund_key, Refund.method, Refund.operator_id, Refund.status)
        ),
        "refunds",
    )  # fmt: skip
    reversal_key = key(Reversal.resolved_ts)
    count(
        session.execute(
            select(reversal_key, Sale.method, Reversal.operator_id, Reversal.status, func.count(),
                   func.sum(Reversal.amount_micro_yuan))
            .join(Sale, Sale.id == Reversal.sale_id)
            .where(*counted_returns(Reversal, t0, t1, ids))
            .group_by(reversal_key, Sale.method, Reversal.operator_id, Reversal.status)
        ),
        "reversals",
    )  # fmt: skip
    names = _operator_names(session, {op for op in operators if op is not None})
    return {
        "period": period,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "site": site,
        "rows": [{"period": bucket_key(period, d), **r} for d, r in zip(starts, rows, strict=True)],
        "by_method": [{"method": m, **methods[m]} for m in sorted(methods)],
        "by_operator": [
            {"operator_id": op, "operator": names.get(op, ""), **row}
            for op, row in sorted(
                operators.items(), key=lambda kv: (names.get(kv[0], ""), kv[0] or 0)
            )
        ],
        "totals": totals,
    }


def report(
    session: Session,
    period: str,
    rng: filters.Range,
    *,
    site_id: str | None = None,
    scope: Scope = EVERYTHING,
    building_id: int | None = None,
) -> dict[str, Any]:
    """The office's report: the range checked (``filters.date_range``), the operator's scope
    and an optional building."""
    filters.date_range(rng.start, rng.end)
    where = filters.Place("building", building_id, "") if building_id is not None else None
    site, _ = site_zone(session, site_id)
    return compute(
        session,
        period,
        rng.start,
        rng.end,
        site_id=site,
        meters=filters.meter_ids(scope, site, where),
    )


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
