"""Every money document in one list (售电记录 / 退电记录): sales, refunds, reversals,
transfers-in and close-account settlements as rows of one shape, filtered the same way, for the
office's records screen, its export and anyone else who lists them (a tenant's purchases).

    stmt = documents.statement(documents.Filter(kinds=("sale",), start_ts=…), scope)
    rows = session.execute(stmt.order_by(*documents.order(stmt)))

Each row: ``kind``, ``record_id``, ``number`` (null for settlements and transfers-in:
``receipts.number_of`` makes theirs), ``meter_id``, ``unit``, ``tenant``, ``amount_micro_yuan``
(a settlement's: what was paid back or owed), ``method`` (a reversal's: its sale's),
``status``, ``reason``, ``operator``, ``created_ts``, ``resolved_ts``, ``original`` (a reversal's
sale number), the receipt's balances and print count, and for the totals ``sales_micro_yuan``,
``refunds_micro_yuan``, ``reversals_micro_yuan`` (each the amount when the row is of that kind
and not rejected, else 0), and ``reversed`` (1 for a sale whose reversal was applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    exists,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)

from cloud.access.scope import Scope
from cloud.models import (
    APPLIED,
    REJECTED,
    Account,
    Customer,
    Gateway,
    Meter,
    Operator,
    Receipt,
    Refund,
    Reversal,
    Sale,
    Settlement,
    Site,
    TransferIn,
    Unit,
)
from cloud.money.printable import derived_number

MODELS: dict[str, Any] = {
    "sale": Sale,
    "refund": Refund,
    "reversal": Reversal,
    "transfer_in": TransferIn,
    "settlement": Settlement,
}
KINDS = tuple(MODELS)
STATUSES = ("pending", "applied", "rejected")


@dataclass(frozen=True)
class Filter:
    """What to list; an empty field does not filter. ``q`` matches a unit number, meter id,
    document number or tenant name (a prefix, or the tenant's name anywhere)."""

    kinds: Sequence[str] = ()
    start_ts: int | None = None
    end_ts: int | None = None
    operator_id: int | None = None
    method: str = ""
    status: str = ""
    q: str = ""
    meter_id: str = ""


def _amount_if(kind: str, this: str, amount: Any, status: Any) -> Any:
    if kind != this:
        return literal(0, BigInteger)
    return case((status == REJECTED, literal(0, BigInteger)), else_=amount)


def _reversed(kind: str) -> Any:
    """1 for a sale whose reversal the collector applied (已冲正), else 0."""
    if kind != "sale":
        return literal(0, Integer)
    done = exists().where(Reversal.sale_id == Sale.id, Reversal.status == APPLIED)
    return case((done, literal(1, Integer)), else_=literal(0, Integer))


def _part(kind: str) -> Select[Any]:
    """One document type as the common row shape."""
    t: Any = MODELS[kind]
    amount: Any = t.amount_micro_yuan if kind != "settlement" else None
    method: Any = null()
    original: Any = null()
    account: Any = t.account_id if kind != "reversal" else Sale.account_id
    number: Any = null()
    if kind in ("sale", "refund"):
        method, number = t.method, t.receipt_no
    elif kind == "reversal":
        method, original, number = Sale.method, Sale.receipt_no, t.receipt_no
    elif kind == "settlement":
        amount = func.coalesce(t.refund_due_micro_yuan, t.debt_owed_micro_yuan, 0)
    stmt = select(
        literal(kind, String(16)).label("kind"),
        t.id.label("record_id"),
        cast(number, String(64)).label("number"),
        t.meter_id.label("meter_id"),
        cast(account, BigInteger).label("account_id"),
        cast(amount, BigInteger).label("amount_micro_yuan"),
        cast(method, String(32)).label("method"),
        t.status.label("status"),
        t.reason.label("reason"),
        t.operator_id.label("operator_id"),
        t.created_ts.label("created_ts"),
        t.resolved_ts.label("resolved_ts"),
        cast(original, String(64)).label("original"),
        _amount_if(kind, "sale", amount, t.status).label("sales_micro_yuan"),
        _amount_if(kind, "refund", amount, t.status).label("refunds_micro_yuan"),
        _amount_if(kind, "reversal", amount, t.status).label("reversals_micro_yuan"),
        _reversed(kind).label("reversed"),
    )
    if kind == "reversal":
        stmt = stmt.select_from(Reversal).join(Sale, Sale.id == Reversal.sale_id)
    return stmt


def _where(part: Select[Any], kind: str, f: Filter) -> Select[Any]:
    """The filters that can be applied inside each part (so indexes on time are used)."""
    t: Any = MODELS[kind]
    if f.start_ts is not None:
        part = part.where(t.created_ts >= f.start_ts)
    if f.end_ts is not None:
        part = part.where(t.created_ts < f.end_ts)
    if f.operator_id is not None:
        part = part.where(t.operator_id == f.operator_id)
    if f.status:
        part = part.where(t.status == f.status)
    if f.meter_id:
        part = part.where(t.meter_id == f.meter_id)
    return part


def statement(f: Filter, scope: Scope | None = None) -> Select[Any]:
    """Every document matching ``f`` (and in ``scope``), as rows of the shape in the module
    doc; order with ``ORDER``."""
    kinds = [k for k in KINDS if not f.kinds or k in f.kinds]
    if not kinds:
        kinds = list(KINDS)
    docs = union_all(*(_where(_part(k), k, f) for k in kinds)).subquery("docs")
    stmt = (
        select(
            docs,
            Unit.number.label("unit"),
            Customer.name.label("tenant"),
            Operator.username.label("operator_username"),
            Operator.display_name.label("operator_name"),
            Receipt.balance_before_micro_yuan.label("balance_before_micro_yuan"),
            Receipt.balance_after_micro_yuan.label("balance_after_micro_yuan"),
            Receipt.prints.label("prints"),
            Receipt.note.label("note"),
            Site.timezone.label("timezone"),
        )
        .select_from(docs)
        .join(Meter, Meter.id == docs.c.meter_id)
        .join(Gateway, Gateway.id == Meter.gateway_id)
        .join(Site, Site.id == Gateway.site_id)
        .outerjoin(Unit, Unit.id == Meter.unit_id)
        .outerjoin(Account, Account.id == docs.c.account_id)
        .outerjoin(Customer, Customer.id == Account.customer_id)
        .outerjoin(Operator, Operator.id == docs.c.operator_id)
        .outerjoin(
            Receipt, and_(Receipt.kind == docs.c.kind, Receipt.record_id == docs.c.record_id)
        )
    )
    if scope is not None:
        stmt = scope.meters(stmt)
    if f.method:
        stmt = stmt.where(docs.c.method == f.method)
    if f.q:
        like = f"{f.q}%"
        stmt = stmt.where(
            or_(
                Unit.number.like(like),
                docs.c.meter_id.like(like),
                docs.c.number.like(like),
                docs.c.original.like(like),
                Customer.name.like(f"%{f.q}%"),
            )
        )
    return stmt


def order(stmt: Select[Any]) -> tuple[Any, ...]:
    """Newest first (the statement's own columns, so a subquery of it orders the same)."""
    cols = stmt.selected_columns
    return (cols.created_ts.desc(), cols.kind, cols.record_id.desc())


def number(row: Any) -> str:
    """A row's document number (settlements and transfers-in have theirs made from the id)."""
    if row.number:
        return str(row.number)
    return derived_number(row.kind, row.record_id, row.timezone, row.created_ts)
