"""The credit runway list (B07): prepaid meters of open accounts sorted by the days of credit
they have left, so the office can call the tenants who will run out first.

The days are the engine's own runway over the cloud's mirror, computed for the whole list in a
fixed number of queries by ``cloud.reporting.board.figures`` (the meter board's figures: the
last eight days from the rollups, today live, the meter's effective settings and tariff), so
the list, the board and the tenant's phone show the same number. Unknown runways (no history
yet, no consumption) come last. ``BUCKETS`` groups them for the chart.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from cloud.access.scope import EVERYTHING, Scope
from cloud.localtime import site_zone
from cloud.models import Account, Building, Customer, Floor, Meter, Unit
from cloud.reporting import board, filters

# (label key, lowest days, highest days): the chart's bars; unknown is its own bar.
BUCKETS: tuple[tuple[str, int, int | None], ...] = (("0", 0, 0), ("1-3", 1, 3), ("4-7", 4, 7), ("8-14", 8, 14), ("15-30", 15, 30),
           ("31+", 31, None))  # fmt: skip


def runway_list(
    session: Session,
    *,
    site_id: str | None = None,
    scope: Scope = EVERYTHING,
    building: int | None = None,
    within_days: int | None = None,
    now: int,
) -> dict[str, Any]:
    """Every prepaid meter of an open account in scope, fewest days left first (see the doc);
    ``within_days`` keeps those with at most that many days (unknown ones dropped)."""
    site, _ = site_zone(session, site_id)
    where = filters.Place("building", building, "") if building is not None else None
    ids = filters.meter_ids(scope, site, where)
    stmt = (
        select(Meter, Unit.number, Building.name, Account.number, Customer.name, Customer.phone)
        .join(Account, Meter.account_id == Account.id)
        .join(Customer, Account.customer_id == Customer.id)
        .outerjoin(Unit, Meter.unit_id == Unit.id)
        .outerjoin(Floor, Unit.floor_id == Floor.id)
        .outerjoin(Building, Floor.building_id == Building.id)
        .where(Meter.id.in_(ids), Meter.prepaid.is_(True), Account.status == "open")
        .options(joinedload(Meter.gateway))
        .order_by(Meter.id)
    )
    found: list[Any] = list(session.execute(stmt))
    figures = board.figures(session, [row[0] for row in found], now)
    items: list[dict[str, Any]] = []
    for meter, unit, building_name, account, customer, phone in found:
        days = figures[meter.id].runway_days
        items.append(
            {
                "meter": meter.id,
                "name": meter.name,
                "unit": unit or "",
                "building": building_name or "",
                "account": account,
                "customer": customer,
                "phone": phone or "",
                "balance_micro_yuan": meter.balance_micro_yuan,
                "today_wh": figures[meter.id].today_wh,
                "runway_days": days if days >= 0 else None,
                "state": meter.state,
            }
        )
    known = [(i, int(i["runway_days"])) for i in items if i["runway_days"] is not None]
    if within_days is not None:
        keep = {id(i) for i, days in known if days <= within_days}
        items = [i for i in items if id(i) in keep]
        known = [(i, days) for i, days in known if days <= within_days]
    items.sort(key=lambda i: (i["runway_days"] is None, i["runway_days"] or 0, i["meter"]))
    counts: list[dict[str, Any]] = [
        {
            "bucket": key,
            "count": len([d for _i, d in known if d >= low and (high is None or d <= high)]),
        }
        for key, low, high in BUCKETS
    ]
    counts.append({"bucket": "unknown", "count": len(items) - len(known)})
    return {"site": site, "items": items, "buckets": counts, "total": len(items)}
