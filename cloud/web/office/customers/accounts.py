"""账户查询 and 销户记录 (F15, F17): open and closed accounts, filtered in the URL, a page with
the total count and the money totals of the whole filtered set, and the export of that set.

One statement per list (``_open_query``, ``_closed_query``), in the operator's building scope
(an account shows when one of its meters is in it); the page and the export run the same one.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import Select, func, or_, select

from cloud.models import (
    APPLIED,
    Account,
    AccountMeter,
    Building,
    Customer,
    Floor,
    Meter,
    Operator,
    Settlement,
    Unit,
)
from cloud.money import accounts as account_service
from cloud.park.board import Rows
from cloud.reporting.exports import Column, xlsx_response
from cloud.web.office.customers import bp
from cloud.web.office.lists import (
    arg,
    date_arg,
    day_start_ts,
    every_row,
    int_arg,
    paginate,
    site_name,
)
from cloud.web.office.security import current, db, page

STATUSES = (account_service.OPEN, account_service.CLOSING, account_service.CLOSED)
STATUS_LABELS: dict[str, Any] = {
    "open": _l("Account open"),
    "closing": _l("Closing"),
    "closed": _l("Account closed"),
}
OPEN_COLUMNS = (
    Column("number", _l("Account no.")),
    Column("unit", _l("Unit no.")),
    Column("tenant", _l("Tenant")),
    Column("phone", _l("Mobile phone")),
    Column("meters", _l("Meter count"), "int"),
    Column("balance", _l("Balance (yuan)"), "yuan"),
    Column("status", _l("Status")),
    Column("opened", _l("Opened on"), "datetime"),
)
CLOSED_COLUMNS = (
    Column("number", _l("Account no.")),
    Column("unit", _l("Unit no.")),
    Column("tenant", _l("Tenant")),
    Column("meters", _l("Meter count"), "int"),
    Column("outcome", _l("Settlement")),
    Column("refund", _l("Refunded (yuan)"), "yuan"),
    Column("debt", _l("Arrears owed (yuan)"), "yuan"),
    Column("operator", _l("Operator")),
    Column("opened", _l("Opened on"), "datetime"),
    Column("closed", _l("Closed on"), "datetime"),
)


def _meters_of_accounts(current_only: bool) -> Any:
    """Per account: its meters (now, or ever) in scope, their balance and first unit number."""
    stmt: Rows = (
        select(
            AccountMeter.account_id.label("account_id"),
            func.count().label("meters"),
            func.coalesce(func.sum(Meter.balance_micro_yuan), 0).label("balance"),
            func.min(Unit.number).label("unit"),
            func.min(Floor.building_id).label("building_id"),
        )
        .join(Meter, Meter.id == AccountMeter.meter_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Floor, Floor.id == Unit.floor_id)
        .group_by(AccountMeter.account_id)
    )
    if current_only:
        stmt = stmt.where(AccountMeter.removed_ts.is_(None))
    return current().scope.meters(stmt).subquery("held")


def _search(stmt: Select[Any]) -> Select[Any]:
    q = arg("q")[:64]
    if not q:
        return stmt
    by_meter = (
        select(AccountMeter.account_id)
        .join(Meter, Meter.id == AccountMeter.meter_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .where(or_(Meter.id.like(f"{q}%"), Unit.number.like(f"{q}%")))
    )
    return stmt.where(
        or_(
            Account.number.like(f"{q}%"),
            Customer.name.like(f"%{q}%"),
            Customer.phone.like(f"{q}%"),
            Account.id.in_(by_meter),
        )
    )


def _dates(stmt: Select[Any], column: Any) -> Select[Any]:
    start, end = date_arg("from"), date_arg("to")
    if start is not None:
        stmt = stmt.where(column >= day_start_ts(start))
    if end is not None:
        stmt = stmt.where(column < day_start_ts(end) + 86_400)
    return stmt


def _open_query() -> Select[Any]:
    held = _meters_of_accounts(current_only=True)
    stmt = (
        select(
            Account.id,
            Account.number,
            Account.status,
            Account.opened_ts,
            Customer.name.label("tenant"),
            Customer.phone.label("phone"),
            func.coalesce(held.c.meters, 0).label("meters"),
            func.coalesce(held.c.balance, 0).label("balance"),
            held.c.unit.label("unit"),
        )
        .join(Customer, Customer.id == Account.customer_id)
        .join(held, held.c.account_id == Account.id)
    )
    status = arg("status")
    if status in STATUSES:
        stmt = stmt.where(Account.status == status)
    else:
        stmt = stmt.where(Account.status != account_service.CLOSED)
    if int_arg("building") is not None:
        stmt = stmt.where(held.c.building_id == int_arg("building"))
    return _dates(_search(stmt), Account.opened_ts)


def _closed_query() -> Select[Any]:
    held = _meters_of_accounts(current_only=False)
    settled = (
        select(
            Settlement.account_id.label("account_id"),
            func.coalesce(func.sum(Settlement.refund_due_micro_yuan), 0).label("refund"),
            func.coalesce(func.sum(Settlement.debt_owed_micro_yuan), 0).label("debt"),
            func.max(Settlement.operator_id).label("operator_id"),
        )
        .where(Settlement.status == APPLIED)
        .group_by(Settlement.account_id)
        .subquery("settled")
    )
    stmt = (
        select(
            Account.id,
            Account.number,
            Account.opened_ts,
            Account.closed_ts,
            Customer.name.label("tenant"),
            held.c.meters,
            held.c.unit,
            func.coalesce(settled.c.refund, 0).label("refund"),
            func.coalesce(settled.c.debt, 0).label("debt"),
            Operator.username.label("operator"),
        )
        .join(Customer, Customer.id == Account.customer_id)
        .join(held, held.c.account_id == Account.id)
        .outerjoin(settled, settled.c.account_id == Account.id)
        .outerjoin(Operator, Operator.id == settled.c.operator_id)
        .where(Account.status == account_service.CLOSED)
    )
    if int_arg("building") is not None:
        stmt = stmt.where(held.c.building_id == int_arg("building"))
    return _dates(_search(stmt), Account.closed_ts)


def outcome(refund: int, debt: int) -> str:
    """退款 / 补缴 / 无费用 of a closed account (its meters' settlements together)."""
    if refund > debt:
        return _("Refund to the tenant")
    if debt > refund:
        return _("Arrears to pay")
    return _("Nothing to settle")


def _buildings() -> list[Building]:
    scope = current().scope
    stmt = select(Building).where(scope.building_ids_in(Building.id)).order_by(Building.name)
    return list(db().scalars(stmt))


@page(bp, "/accounts", "accounts.read", endpoint="accounts")
def accounts_list() -> Any:
    stmt = _open_query()
    listing = paginate(
        stmt, order_by=Account.id.desc(), totals={"balance": stmt.selected_columns.balance},
        scalars=False,
    )  # fmt: skip
    return render_template(
        "office/customers/accounts.html",
        listing=listing,
        statuses=STATUSES,
        status_labels=STATUS_LABELS,
        buildings=_buildings(),
    )


@page(bp, "/accounts/export", "accounts.read")
def accounts_export() -> Any:
    rows = list(every_row(_open_query(), order_by=Account.id.desc(), scalars=False))
    out = (
        {
            "number": r.number,
            "unit": r.unit,
            "tenant": r.tenant,
            "phone": r.phone,
            "meters": r.meters,
            "balance": r.balance,
            "status": str(STATUS_LABELS[r.status]),
            "opened": r.opened_ts,
        }
        for r in rows
    )
    return xlsx_response(
        _("Accounts"),
        OPEN_COLUMNS,
        out,
        site_name=site_name(),
        filters=[
            (_("Search"), arg("q")),
            (_("Status"), arg("status")),
            (_("From"), arg("from")),
            (_("To"), arg("to")),
        ],
        totals={"balance": sum(int(r.balance) for r in rows)},
        totals_label=_("Total"),
    )


@page(bp, "/closed", "accounts.read", endpoint="closed_accounts")
def closed_list() -> Any:
    stmt = _closed_query()
    cols = stmt.selected_columns
    listing = paginate(
        stmt, order_by=Account.closed_ts.desc(), totals={"refund": cols.refund, "debt": cols.debt},
        scalars=False,
    )  # fmt: skip
    return render_template(
        "office/customers/closed.html", listing=listing, outcome=outcome, buildings=_buildings()
    )


@page(bp, "/closed/export", "accounts.read")
def closed_export() -> Any:
    rows = list(every_row(_closed_query(), order_by=Account.closed_ts.desc(), scalars=False))
    out = (
        {
            "number": r.number,
            "unit": r.unit,
            "tenant": r.tenant,
            "meters": r.meters,
            "outcome": outcome(int(r.refund), int(r.debt)),
            "refund": r.refund,
            "debt": r.debt,
            "operator": r.operator,
            "opened": r.opened_ts,
            "closed": r.closed_ts,
        }
        for r in rows
    )
    return xlsx_response(
        _("Closed accounts"),
        CLOSED_COLUMNS,
        out,
        site_name=site_name(),
        filters=[(_("Search"), arg("q")), (_("From"), arg("from")), (_("To"), arg("to"))],
        totals={"refund": sum(int(r.refund) for r in rows), "debt": sum(int(r.debt) for r in rows)},
        totals_label=_("Total"),
    )
