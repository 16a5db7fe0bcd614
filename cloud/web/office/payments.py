"""报表中心 · 支付对账 (B04): the daily reconciliation of online payments with the providers'
bills, for the office.

- the daily summary, one line per provider and day (bill rows, paid, refunded, our orders,
  cases, open cases), newest first;
- one day's cases (provider-only = a lost notification, queried and credited by the run;
  local-only; amounts or refunds that differ; paid but not credited; credited but not applied
  on the meter), each resolvable by a person with a note (the reason is required and logged);
- the day's cases and the summary exported to Excel (the shared exporter);
- run a day again now (``payments.manage``): the same ``jobs.reconcile_day`` the schedule
  runs (a re-run replaces the day's run).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from openpyxl import Workbook
from sqlalchemy import func, select

from cloud.audit import record
from cloud.errors import ServiceError
from cloud.models import now_ts
from cloud.models.payments import ReconciliationCase, ReconciliationRun
from cloud.payments import jobs
from cloud.payments.orders import Payments
from cloud.reporting.exports import Column, sheet_name, write_sheet
from cloud.web import pay
from cloud.web.office.forms import Form
from cloud.web.office.lists import arg, date_arg, site_name
from cloud.web.office.security import blueprint, current, db, page

bp = blueprint("office_payments", "/office/payments")
READ, MANAGE = "payments.read", "payments.manage"
SUMMARY_DAYS = 31

KIND_LABELS = {
    "provider_only": _l("On the bill only (lost notification)"),
    "local_only": _l("Ours only (not on the bill)"),
    "amount_differs": _l("Amounts differ"),
    "refund_differs": _l("Refunds differ"),
    "not_credited": _l("Paid, not credited"),
    "not_applied": _l("Credited, not applied on the meter"),
}
STATUS_LABELS = {"open": _l("Open"), "resolved": _l("Resolved")}
CASE_COLUMNS = (
    Column("kind", _l("Case"), width=30),
    Column("provider", _l("Provider")),
    Column("out_trade_no", _l("Order no."), width=30),
    Column("bill_amount", _l("Bill amount (yuan)"), "yuan"),
    Column("local_amount", _l("Our amount (yuan)"), "yuan"),
    Column("status", _l("Status")),
    Column("detail", _l("Detail"), width=60),
    Column("resolution", _l("Resolution"), width=40),
)
SUMMARY_COLUMNS = (
    Column("bill_date", _l("Bill day")),
    Column("provider", _l("Provider")),
    Column("bill_rows", _l("Bill rows"), "int"),
    Column("bill_paid", _l("Paid on the bill (yuan)"), "yuan"),
    Column("bill_refunded", _l("Refunded on the bill (yuan)"), "yuan"),
    Column("orders", _l("Our orders"), "int"),
    Column("cases", _l("Cases"), "int"),
    Column("open_cases", _l("Open cases"), "int"),
    Column("run_ts", _l("Reconciled at"), "datetime"),
)


def _payments() -> Payments:
    found: Payments = current_app.extensions["gridvend.payments"]
    return found


def _yesterday() -> dt.date:
    return jobs.previous_day(now_ts())


def _fen_to_micro(fen: int | None) -> int | None:
    return None if fen is None else fen * 10_000


def summaries(limit_days: int = SUMMARY_DAYS) -> list[dict[str, Any]]:
    """The daily summary lines of the last ``limit_days`` bill days, newest first."""
    open_counts = dict(
        db()
        .execute(
            select(ReconciliationCase.run_id, func.count())
            .where(ReconciliationCase.status == "open")
            .group_by(ReconciliationCase.run_id)
        )
        .all()
    )
    since = (_yesterday() - dt.timedelta(days=limit_days)).isoformat()
    runs = db().scalars(
        select(ReconciliationRun)
        .where(ReconciliationRun.bill_date >= since)
        .order_by(ReconciliationRun.bill_date.desc(), ReconciliationRun.provider)
    )
    return [
        {
            "id": run.id,
            "bill_date": run.bill_date,
            "provider": pay.label(run.provider),
            "provider_name": run.provider,
            "bill_rows": run.bill_rows,
            "bill_paid": _fen_to_micro(run.bill_paid_fen),
            "bill_refunded": _fen_to_micro(run.bill_refunded_fen),
            "orders": run.orders,
            "cases": run.cases,
            "open_cases": int(open_counts.get(run.id, 0)),
            "run_ts": run.run_ts,
        }
        for run in runs
    ]


def _selected() -> tuple[dt.date, str]:
    day = date_arg("day") or _yesterday()
    provider = arg("provider")
    return day, provider


def case_rows(day: dt.date, provider: str) -> list[dict[str, Any]]:
    stmt = (
        select(ReconciliationCase)
        .join(ReconciliationRun, ReconciliationRun.id == ReconciliationCase.run_id)
        .where(ReconciliationRun.bill_date == day.isoformat())
        .order_by(ReconciliationCase.status.desc(), ReconciliationCase.id)
    )
    if provider:
        stmt = stmt.where(ReconciliationRun.provider == provider)
    return [
        {
            "id": c.id,
            "kind_code": c.kind,
            "kind": str(KIND_LABELS.get(c.kind, c.kind)),
            "provider": pay.label(c.provider),
            "out_trade_no": c.out_trade_no,
            "bill_amount": _fen_to_micro(c.bill_amount_fen),
            "local_amount": _fen_to_micro(c.local_amount_fen),
            "status_code": c.status,
            "status": str(STATUS_LABELS.get(c.status, c.status)),
            "detail": c.detail,
            "resolution": c.resolution,
            "resolved_ts": c.resolved_ts,
        }
        for c in db().scalars(stmt)
    ]


@page(bp, "/reconciliation", READ)
def reconciliation() -> Any:
    day, provider = _selected()
    return render_template(
        "office/payments/reconciliation.html",
        day=day,
        provider=provider,
        providers=[(n, pay.label(n)) for n in _payments().providers],
        summary=summaries(),
        cases=case_rows(day, provider),
        reconciled=db().scalar(
            select(func.count())
            .select_from(ReconciliationRun)
            .where(ReconciliationRun.bill_date == day.isoformat())
        ),
    )


@page(bp, "/reconciliation/export", READ)
def reconciliation_export() -> Any:
    """The day's cases and the daily summary, one workbook of two sheets."""
    day, provider = _selected()
    title = _("Payment reconciliation")
    filters = [(_("Bill day"), day.isoformat()), (_("Provider"), provider)]
    wb = Workbook(write_only=True)
    write_sheet(wb, _("Cases"), CASE_COLUMNS, case_rows(day, provider),
                site_name=site_name(), filters=filters)  # fmt: skip
    write_sheet(wb, _("Daily summary"), SUMMARY_COLUMNS, summaries(), site_name=site_name())
    spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    wb.save(spool)
    spool.seek(0)
    return send_file(
        spool,
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"{sheet_name(title)}-{day.isoformat()}.xlsx",
        max_age=0,
    )


@page(bp, "/reconciliation/run", MANAGE, methods=("POST",))
def reconciliation_run() -> Any:
    """Reconcile a day now (a re-run replaces that day's run)."""
    form = Form()
    try:
        day = dt.date.fromisoformat(form.value("day"))
    except ValueError:
        flash(_("Choose the bill day to reconcile."), "danger")
        return redirect(url_for("office_payments.reconciliation"))
    if day > _yesterday():
        flash(
            _("Only a day that is over can be reconciled (bills come out the next day)."), "danger"
        )
        return redirect(url_for("office_payments.reconciliation", day=day.isoformat()))
    names = [form.value("provider")] if form.value("provider") else list(_payments().providers)
    # The run writes in transactions of its own (it queries providers between them): end this
    # request's transaction first, or SQLite's one writer would wait for itself.
    db().commit()
    for name in names:
        if name not in _payments().providers:
            abort(404)
        try:
            summary = jobs.reconcile_day(_payments().db, _payments(), name, day)
        except ServiceError as exc:
            flash(
                _("%(provider)s: not reconciled: %(why)s", provider=name, why=exc.message), "danger"
            )
            continue
        record(db(), current().actor, "payments.reconcile", "reconciliation", f"{name}:{day}",
               after={"cases": summary.cases, "open": summary.open_cases})  # fmt: skip
        flash(
            _(
                "%(provider)s %(day)s reconciled: %(cases)d cases, %(open)d open.",
                provider=name,
                day=day.isoformat(),
                cases=summary.cases,
                open=summary.open_cases,
            ),
            "success",
        )
    return redirect(url_for("office_payments.reconciliation", day=day.isoformat()))


@page(bp, "/cases/<int:case_id>/resolve", MANAGE, methods=("POST",))
def resolve_case(case_id: int) -> Any:
    """Mark a case resolved with what was done (required; logged)."""
    case = db().get(ReconciliationCase, case_id, with_for_update=True)
    if case is None:
        abort(404)
    run = db().get(ReconciliationRun, case.run_id)
    assert run is not None
    form = Form()
    note = form.text("resolution", max_len=500)
    back = url_for("office_payments.reconciliation", day=run.bill_date,
                   provider=request.args.get("provider", ""))  # fmt: skip
    if not form.ok:
        flash(_("Say what was done about the case (required)."), "danger")
        return redirect(back)
    before = {"status": case.status, "resolution": case.resolution}
    case.status, case.resolution, case.resolved_ts = "resolved", note, now_ts()
    record(db(), current().actor, "payments.case.resolve", "reconciliation_case", case.id,
           before=before, after={"status": case.status, "resolution": note})  # fmt: skip
    flash(_("Case %(no)s resolved.", no=case.out_trade_no), "success")
    return redirect(back)
