"""客户详情: one tenant's account on one page (the MPM pattern): who, their meters (state,
balance, today, runway), money documents, 30 days of use as a sparkline (ECharts from JSON
in the page), alarms, commands, meter swaps, settlements, and the numbers their texts go to
(``cloud.notify``: the tenant's own numbers, else the phone on file)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import render_template
from sqlalchemy import select

from cloud.localtime import local_day, zone
from cloud.models import (
    Alarm,
    Command,
    Meter,
    MeterSwap,
    Settlement,
    Unit,
    now_ts,
)
from cloud.money import documents, swap
from cloud.notify import recipients
from cloud.reporting import board as figures
from cloud.reporting import usage
from cloud.web.office.customers import bp
from cloud.web.office.customers.opening import account_in_scope
from cloud.web.office.security import current, db, page

RECENT = 20


def _sparkline(meters: list[Meter], now: int) -> dict[str, Any]:
    """The account's daily energy over the last 30 local days (its current meters together)."""
    if not meters:
        return {"labels": [], "wh": []}
    tz = zone(meters[0].gateway.site.timezone)
    today = local_day(now, tz)
    start = today - dt.timedelta(days=usage.DAYS - 1)
    total: dict[dt.date, int] = {}
    for m in meters:
        for d in usage.days(db(), m, start, today):
            total[d.day] = total.get(d.day, 0) + d.energy_wh
    days = sorted(total)
    return {"labels": [d.strftime("%m-%d") for d in days], "wh": [total[d] for d in days]}


@page(bp, "/accounts/<int:account_id>", "accounts.read", endpoint="account")
def account_page(account_id: int) -> Any:
    account = account_in_scope(account_id)
    s, now = db(), now_ts()
    current_ids = [link.meter_id for link in account.links if link.removed_ts is None]
    all_ids = [link.meter_id for link in account.links]
    meters = {m.id: m for m in s.scalars(select(Meter).where(Meter.id.in_(all_ids)))}
    units = {
        u.id: u
        for u in s.scalars(
            select(Unit).where(Unit.id.in_({m.unit_id for m in meters.values() if m.unit_id}))
        )
    }
    live = [meters[i] for i in current_ids if i in meters]
    page_figures = figures.figures(s, live, now)
    stmt = documents.statement(documents.Filter(), current().scope)
    stmt = stmt.where(stmt.selected_columns.account_id == account.id)
    docs = list(s.execute(stmt.order_by(*documents.order(stmt)).limit(RECENT)))
    alarms = list(
        s.scalars(
            select(Alarm)
            .where(Alarm.meter_id.in_(all_ids))
            .order_by(Alarm.raised_ts.desc())
            .limit(RECENT)
        )
    )
    recent_commands = list(
        s.scalars(
            select(Command)
            .where(Command.meter_id.in_(all_ids))
            .order_by(Command.id.desc())
            .limit(RECENT)
        )
    )
    swaps = list(
        s.scalars(
            select(MeterSwap).where(MeterSwap.account_id == account.id).order_by(MeterSwap.id)
        )
    )
    settlements = list(
        s.scalars(
            select(Settlement).where(Settlement.account_id == account.id).order_by(Settlement.id)
        )
    )
    return render_template(
        "office/customers/account.html",
        account=account,
        meters=meters,
        current_ids=current_ids,
        units=units,
        figures=page_figures,
        docs=docs,
        number=documents.number,
        alarms=alarms,
        commands=recent_commands,
        swaps=[(item, swap.state(s, item)) for item in swaps],
        settlements=settlements,
        sms=recipients.numbers_of(db(), account.customer_id),
        chart={"daily": _sparkline(live, now)},
    )
