"""Daily reconciliation (B04): for one provider and one of its days (Beijing), the provider's
bill × our orders × the meters' applied purchase numbers (``cloud.payments.matching``), stored
as a run with its cases for the office page and the Excel export.

A ``provider_only`` case is a lost notification: the run asks the provider about it (never
guesses) and, when the answer is paid, applies it exactly as a notification would
(``orders.apply_event``: paid, then credited through the sale path); the case stays on the
page, resolved, saying so. Running a day again replaces that day's run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import delete, or_, select

from cloud.db import Database
from cloud.errors import ServiceError
from cloud.models import APPLIED, Sale
from cloud.models.payments import PaymentOrder, ReconciliationCase, ReconciliationRun
from cloud.payments import lifecycle as lc
from cloud.payments.matching import Case, LocalOrder, match
from cloud.payments.orders import apply_event
from cloud.payments.provider import Provider

BEIJING = ZoneInfo("Asia/Shanghai")
log = logging.getLogger("gridvend.payments")
_STUCK = (lc.PAID, lc.CREDITING, lc.CREDIT_FAILED, lc.HELD)


@dataclass(frozen=True)
class Summary:
    """The daily summary line: what the bill holds, how many orders, how many open cases."""

    provider: str
    bill_date: str
    bill_rows: int
    bill_paid_fen: int
    bill_refunded_fen: int
    orders: int
    cases: int
    open_cases: int


def day_bounds(day: dt.date) -> tuple[int, int]:
    """The provider's day (Beijing) as UTC epoch seconds [start, end)."""
    start = dt.datetime.combine(day, dt.time(), BEIJING)
    return int(start.timestamp()), int((start + dt.timedelta(days=1)).timestamp())


def _local_orders(
    db: Database, provider: str, numbers: set[str], start: int, end: int
) -> list[LocalOrder]:
    with db.session(readonly=True) as s:
        rows = s.execute(
            select(PaymentOrder, Sale.status)
            .outerjoin(Sale, Sale.id == PaymentOrder.sale_id)
            .where(
                PaymentOrder.provider == provider,
                or_(
                    PaymentOrder.paid_ts.between(start, end - 1),
                    PaymentOrder.refunded_ts.between(start, end - 1),
                    PaymentOrder.out_trade_no.in_(numbers),
                    PaymentOrder.state.in_(_STUCK),
                ),
            )
        ).all()
        return [
            LocalOrder(
                order.out_trade_no,
                provider,
                order.amount_fen,
                order.state,
                order.paid_ts,
                on_bill_day=order.paid_ts is not None and start <= order.paid_ts < end,
                refunded_fen=order.refunded_fen,
                purchase_applied=(sale_status == APPLIED) if order.sale_id is not None else None,
                refunded_on_bill_day=_within(
                    order.refunded_ts if order.refunded_ts is not None else order.paid_ts,
                    start,
                    end,
                ),
            )
            for order, sale_status in rows
        ]


def _within(ts: int | None, start: int, end: int) -> bool:
    """``ts`` falls on the bill's day (a refund made before 0012 has no time: its paid day)."""
    return ts is not None and start <= ts < end


def _resolve_lost(db: Database, provider: Provider, case: Case, now: int) -> str:
    """Query the provider about a provider-only trade; credit it when paid. An answer that
    cannot be applied (another amount than the order's, another provider's order) or no answer
    leaves the case open for a person, and the rest of the day is still reconciled."""
    try:
        event = provider.query(case.out_trade_no)
        if not event.is_paid:
            return ""
        with db.session() as s:
            exists = s.scalar(
                select(PaymentOrder.id).where(PaymentOrder.out_trade_no == case.out_trade_no)
            )
            if exists is None:
                return ""  # not an order of ours at all: a person must look
            verdict = apply_event(s, event, now)
    except ServiceError as exc:
        log.warning("reconciliation: %s left open: %s", case.out_trade_no, exc.message)
        return ""
    return "queried: paid; credited through the sale path" if verdict == "accepted" else ""


def reconcile(
    db: Database,
    name: str,
    provider: Provider,
    day: dt.date,
    *,
    clock: Callable[[], float],
    stale_after_s: float = 30 * 60,
) -> Summary:
    """Reconcile ``provider`` (configured as ``name``) for ``day``; returns the summary."""
    now = int(clock())
    bill = provider.bill(day)
    start, end = day_bounds(day)
    orders = _local_orders(db, name, {row.out_trade_no for row in bill}, start, end)
    cases = match(bill, orders, now_s=now, stale_after_s=stale_after_s)
    resolutions = {
        case.out_trade_no: _resolve_lost(db, provider, case, now)
        for case in cases
        if case.kind == "provider_only"
    }
    with db.session() as s:
        old = s.scalar(
            select(ReconciliationRun.id).where(
                ReconciliationRun.provider == name, ReconciliationRun.bill_date == day.isoformat()
            )
        )
        # What people wrote on the cases of the run replaced: a case found again keeps it.
        kept: dict[tuple[str, str], tuple[str, int | None]] = {}
        if old is not None:
            for c in s.scalars(
                select(ReconciliationCase).where(
                    ReconciliationCase.run_id == old, ReconciliationCase.status == "resolved"
                )
            ):
                kept[(c.kind, c.out_trade_no)] = (c.resolution, c.resolved_ts)
            s.execute(delete(ReconciliationCase).where(ReconciliationCase.run_id == old))
            s.execute(delete(ReconciliationRun).where(ReconciliationRun.id == old))
        run = ReconciliationRun(
            provider=name,
            bill_date=day.isoformat(),
            run_ts=now,
            bill_rows=len(bill),
            bill_paid_fen=sum(r.amount_fen for r in bill if r.kind == "payment"),
            bill_refunded_fen=sum(r.amount_fen for r in bill if r.kind == "refund"),
            orders=len(orders),
            cases=len(cases),
        )
        s.add(run)
        s.flush()
        open_cases = 0
        for case in cases:
            resolution = (
                resolutions.get(case.out_trade_no, "") if case.kind == "provider_only" else ""
            )
            resolved_ts: int | None = now if resolution else None
            if not resolution and (case.kind, case.out_trade_no) in kept:
                resolution, resolved_ts = kept[(case.kind, case.out_trade_no)]
            open_cases += not resolution
            s.add(
                ReconciliationCase(
                    run_id=run.id,
                    kind=case.kind,
                    provider=case.provider,
                    out_trade_no=case.out_trade_no,
                    bill_amount_fen=case.bill_amount_fen,
                    local_amount_fen=case.local_amount_fen,
                    detail=case.detail[:500],
                    status="resolved" if resolution else "open",
                    resolution=resolution,
                    resolved_ts=resolved_ts,
                )
            )
        return Summary(
            name,
            run.bill_date,
            run.bill_rows,
            run.bill_paid_fen,
            run.bill_refunded_fen,
            run.orders,
            run.cases,
            open_cases,
        )


def cases_of(db: Database, name: str, day: dt.date) -> list[ReconciliationCase]:
    """The stored cases of one provider-day (what the office page and the export show)."""
    with db.session() as s:
        run_id = s.scalar(
            select(ReconciliationRun.id).where(
                ReconciliationRun.provider == name, ReconciliationRun.bill_date == day.isoformat()
            )
        )
        if run_id is None:
            return []
        return list(
            s.scalars(
                select(ReconciliationCase)
                .where(ReconciliationCase.run_id == run_id)
                .order_by(ReconciliationCase.id)
            )
        )
