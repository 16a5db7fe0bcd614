"""The tenant's monthly statement (租户月度对账单, the MyEMS 付款通知书 shape): for one account and
one local month, per meter: the opening balance, the purchases, the refunds, the energy by
time-of-use band and its charges, the closing balance, and the lines behind them.

Balances come from the ledger's own rows (``cloud.money.ledger``'s classification): the balance
at an instant is Σ credits − Σ refunds − Σ charges before it, where credits are applied sales,
transfers-in and settlement credits and refunds are applied refunds, reversals and settlement
refunds (each at the time the collector confirmed it, ``resolved_ts``), and charges are what
the collector reported with its readings, per local day (``cloud.reporting.days``: rollups,
which survive archival, else the raw readings). The opening and the closing are that balance at
the start and the end of the month, so ``opening + purchases − refunds − charges = closing``
holds to the micro-yuan by construction, and for the month in progress the closing is the
meter's mirror balance (the tests hold both).

A meter that joined or left the account during the month counts from the start of the local day
it joined to the end of the day it left.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from cloud.access.scope import EVERYTHING, Scope
from cloud.errors import NotFoundError
from cloud.localtime import day_bounds, local_day, zone
from cloud.models import (
    APPLIED,
    Account,
    AccountMeter,
    Meter,
    Refund,
    Reversal,
    Sale,
    Settlement,
    Site,
    TransferIn,
    Unit,
)
from cloud.reporting import bands, days, filters

_FOREVER = dt.date(1970, 1, 2)


def _movements(session: Session, meter_id: str, t0: int | None, t1: int) -> list[dict[str, Any]]:
    """Every applied money movement of a meter confirmed in ``[t0, t1)`` (t0 None: since the
    beginning): kind, sign (+1 credit, −1 refund), amount, document number, time."""

    def window(column: Any) -> list[Any]:
        where = [column < t1]
        if t0 is not None:
            where.append(column >= t0)
        return where

    out: list[dict[str, Any]] = []
    kinds: tuple[tuple[str, Any, int], ...] = (
        ("sale", Sale, 1),
        ("transfer_in", TransferIn, 1),
        ("refund", Refund, -1),
        ("reversal", Reversal, -1),
    )
    for kind, model, sign in kinds:
        receipt = getattr(model, "receipt_no", None)
        method = getattr(model, "method", None)
        cols = [model.id, model.amount_micro_yuan, model.resolved_ts]
        cols.append(receipt if receipt is not None else model.id)
        cols.append(method if method is not None else model.id)
        found: list[Any] = list(
            session.execute(
                select(*cols).where(
                    model.meter_id == meter_id, model.status == APPLIED, *window(model.resolved_ts)
                )
            )
        )
        for rid, amount, ts, no, how in found:
            out.append(
                {
                    "kind": kind,
                    "sign": sign,
                    "amount_micro_yuan": int(amount),
                    "ts": ts,
                    "no": no if receipt is not None else str(rid),
                    "method": how if method is not None else "",
                }
            )
    for item in session.scalars(
        select(Settlement).where(
            Settlement.meter_id == meter_id,
            Settlement.status == APPLIED,
            *window(Settlement.resolved_ts),
        )
    ):
        if item.debt_owed_micro_yuan:
            out.append(_settled(item, "settlement_credit", 1, item.debt_owed_micro_yuan))
        if item.refund_due_micro_yuan:
            out.append(_settled(item, "settlement_refund", -1, item.refund_due_micro_yuan))
    out.sort(key=lambda m: (m["ts"] or 0, m["kind"]))
    return out


def _settled(item: Settlement, kind: str, sign: int, amount: int) -> dict[str, Any]:
    return {
        "kind": kind,
        "sign": sign,
        "amount_micro_yuan": int(amount),
        "ts": item.resolved_ts,
        "no": f"S{item.id}",
        "method": "",
    }


def balance_before(
    session: Session, meter_id: str, day: dt.date, tz: dt.tzinfo, *, today: dt.date
) -> int:
    """The meter's balance at the start of local ``day`` from the ledger's rows."""
    t, _ = day_bounds(day, tz)
    money = sum(m["sign"] * m["amount_micro_yuan"] for m in _movements(session, meter_id, None, t))
    ids = select(Meter.id).where(Meter.id == meter_id)
    charged = days.per_day(session, ids, _FOREVER, day - dt.timedelta(days=1), tz, today=today)
    return money - sum(d.charge_micro_yuan for d in charged.values())


def _meter_month(
    session: Session, meter: Meter, first: dt.date, last: dt.date, tz: dt.tzinfo, today: dt.date
) -> dict[str, Any]:
    t0, _ = day_bounds(first, tz)
    _, t1 = day_bounds(last, tz)
    moves = _movements(session, meter.id, t0, t1)
    ids = select(Meter.id).where(Meter.id == meter.id)
    by_day = days.per_day(session, ids, first, last, tz, today=today)
    month = days.total(by_day)
    opening = balance_before(session, meter.id, first, tz, today=today)
    closing = balance_before(session, meter.id, last + dt.timedelta(days=1), tz, today=today)
    purchases = sum(m["amount_micro_yuan"] for m in moves if m["sign"] > 0)
    refunds = sum(m["amount_micro_yuan"] for m in moves if m["sign"] < 0)
    return {
        "meter": meter.id,
        "name": meter.name,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "opening_micro_yuan": opening,
        "purchases_micro_yuan": purchases,
        "refunds_micro_yuan": refunds,
        "charges_micro_yuan": month.charge_micro_yuan,
        "closing_micro_yuan": closing,
        "energy_wh": month.energy_wh,
        "bands": {c: list(month.bands[c]) for c in bands.CATEGORIES},
        "unsplit_wh": month.unsplit_wh,
        "lines": [{**m, "meter": meter.id} for m in moves],
        "identity_holds": opening + purchases - refunds - month.charge_micro_yuan == closing,
    }


def find_account(session: Session, scope: Scope, text: str | None) -> Account | None:
    """An account by its number, else the newest account with a meter in the unit (户号)
    ``text``; None when nothing matches in the operator's scope."""
    raw = (text or "").strip()[:64]
    if not raw:
        return None
    found = session.scalars(select(Account).where(Account.number == raw)).first()
    if found is None:
        found = session.scalars(
            select(Account)
            .join(AccountMeter, AccountMeter.account_id == Account.id)
            .join(Meter, Meter.id == AccountMeter.meter_id)
            .join(Unit, Unit.id == Meter.unit_id)
            .where(or_(Unit.number == raw, Meter.id == raw))
            .order_by(Account.opened_ts.desc(), Account.id.desc())
        ).first()
    if found is None:
        return None
    visible = scope.meters(
        select(Meter.id)
        .join(AccountMeter, AccountMeter.meter_id == Meter.id)
        .where(AccountMeter.account_id == found.id)
    )
    return found if scope.everything or session.scalar(visible.limit(1)) else None


def accounts_of_month(session: Session, scope: Scope, month: dt.date) -> list[int]:
    """Ids of the accounts with a meter in scope during the local month starting ``month``."""
    sites = {s.id: zone(s.timezone) for s in session.scalars(select(Site))}
    out: set[int] = set()
    visible = set(session.scalars(scope.meters(select(Meter.id))))
    for link, site_id in session.execute(
        select(AccountMeter, Account.site_id).join(Account, Account.id == AccountMeter.account_id)
    ):
        tz = sites.get(site_id) or zone(None)
        t0, _ = day_bounds(month.replace(day=1), tz)
        _, t1 = day_bounds(filters.month_end(month.replace(day=1)), tz)
        if (
            link.meter_id in visible
            and link.added_ts < t1
            and (link.removed_ts is None or link.removed_ts >= t0)
        ):
            out.add(link.account_id)
    return sorted(out)


def monthly(
    session: Session,
    account_id: int,
    month: dt.date,
    *,
    scope: Scope = EVERYTHING,
    now: int,
) -> dict[str, Any]:
    """The statement of ``account_id`` for the local month starting ``month`` (see the doc)."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFoundError(f"account {account_id} does not exist", "account")
    site = session.get(Site, account.site_id)
    tz = zone(site.timezone if site is not None else None)
    first = month.replace(day=1)
    last = filters.month_end(first)
    local_today = local_day(now, tz)
    t0, _ = day_bounds(first, tz)
    _, t1 = day_bounds(last, tz)
    links = [
        link
        for link in account.links
        if link.added_ts < t1 and (link.removed_ts is None or link.removed_ts >= t0)
    ]
    in_scope = set(
        session.scalars(
            scope.meters(select(Meter.id).where(Meter.id.in_([link.meter_id for link in links])))
        )
    )
    if not in_scope and links:
        raise NotFoundError(f"account {account_id} does not exist", "account")
    meters = []
    for link in sorted(links, key=lambda lk: lk.meter_id):
        meter = session.get(Meter, link.meter_id)
        if meter is None or meter.id not in in_scope:
            continue
        start = max(first, local_day(link.added_ts, tz))
        end = min(last, local_day(link.removed_ts, tz)) if link.removed_ts is not None else last
        unit = session.get(Unit, meter.unit_id) if meter.unit_id is not None else None
        entry = _meter_month(session, meter, start, end, tz, local_today)
        entry["unit"] = unit.number if unit is not None else ""
        meters.append(entry)
    sums = {
        key: sum(m[key] for m in meters)
        for key in (
            "opening_micro_yuan",
            "purchases_micro_yuan",
            "refunds_micro_yuan",
            "charges_micro_yuan",
            "closing_micro_yuan",
            "energy_wh",
            "unsplit_wh",
        )
    }
    band_totals = {
        c: [sum(m["bands"][c][i] for m in meters) for i in (0, 1)] for c in bands.CATEGORIES
    }
    customer = account.customer
    return {
        "number": f"ST{first.year:04d}{first.month:02d}-{account.number}",
        "account": {
            "id": account.id,
            "number": account.number,
            "customer": customer.name if customer is not None else "",
            "phone": customer.phone if customer is not None else "",
            "status": account.status,
        },
        "site": site.name if site is not None else "",
        "month": f"{first.year:04d}-{first.month:02d}",
        "from": first.isoformat(),
        "to": last.isoformat(),
        "issued": local_today.isoformat(),
        "meters": meters,
        "lines": sorted((ln for m in meters for ln in m["lines"]), key=lambda ln: ln["ts"] or 0),
        "bands": band_totals,
        "totals": sums,
        "identity_holds": all(m["identity_holds"] for m in meters)
        and sums["opening_micro_yuan"]
        + sums["purchases_micro_yuan"]
        - sums["refunds_micro_yuan"]
        - sums["charges_micro_yuan"]
        == sums["closing_micro_yuan"],
    }
