"""What one money document's receipt prints (``Document``), read in one statement, and where its
money is on the way to the meter (``delivery``). ``cloud.money.receipts`` re-exports both
(``receipts.document(session, kind, record_id)``) beside the receipt's writes.

One statement per document: the result page polls it every second while a sale is on its way,
and a busy counter shows one after every sale, so the record, its meter, collector, site and
defaults, account, tenant, unit, operator, receipt row, command and (for a reversal) the sale
it reverses come back in one row. ``ISSUING`` is the same read with the counter's facts (the
pending sums, the last purchase number) in place of the receipt row, for
``receipts.issued``, which writes the receipt from them and builds the document with
``of_row``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, bindparam, func, literal, literal_column, null, select
from sqlalchemy.orm import Session

from cloud.access.operators import label as operator_label
from cloud.errors import InvalidError, NotFoundError
from cloud.models import (
    APPLIED,
    PENDING,
    REJECTED,
    Account,
    Command,
    Customer,
    Gateway,
    Meter,
    Operator,
    PurchaseSequence,
    Receipt,
    Refund,
    Reversal,
    Sale,
    Settlement,
    Site,
    SiteDefaults,
    TransferIn,
    Unit,
)
from cloud.models.base import table_of
from cloud.money.records import receipt_number

MODELS: dict[str, type[Any]] = {
    "sale": Sale,
    "refund": Refund,
    "reversal": Reversal,
    "transfer_in": TransferIn,
    "settlement": Settlement,
}
# Money the tenant receives back (printed as a positive amount under its type).
OUTGOING = frozenset({"refund", "reversal"})
# Delivery states (``delivery``): the result page and the receipt show one of these.
APPLIED_STATE, REJECTED_STATE, SENT, QUEUED, OFFLINE = (
    "applied",
    "rejected",
    "sent",
    "queued",
    "offline",
)
DECIDED = frozenset({APPLIED_STATE, REJECTED_STATE})
# Numbers of the records that have no ``receipt_no`` of their own.
NUMBER_PREFIXES = {"settlement": "ST", "transfer_in": "TI"}


@dataclass
class Document:
    """Everything a receipt or slip prints (amounts in micro-yuan, times UTC epoch seconds),
    and the meter's balance and relay now (the result page shows them beside it)."""

    kind: str
    record_id: int
    number: str
    created_ts: int
    meter_id: str
    meter_name: str
    amount_micro_yuan: int
    status: str
    reason: str | None
    dispatch: str
    site_name: str
    header: str
    copies: int
    unit: str | None = None
    tenant: str | None = None
    account_number: str | None = None
    method: str | None = None
    purchase_count: int | None = None
    balance_before_micro_yuan: int | None = None
    balance_after_micro_yuan: int | None = None
    tendered_micro_yuan: int | None = None
    change_micro_yuan: int | None = None
    note: str = ""
    operator: str = ""
    original_number: str | None = None
    prints: int = 0
    settlement: dict[str, Any] = field(default_factory=dict)
    meter_balance_micro_yuan: int = 0
    meter_relay: str = "unknown"

    @property
    def reprint(self) -> bool:
        """A print after the first is a reprint (补打)."""
        return self.prints > 1

    @property
    def decided(self) -> bool:
        return self.dispatch in DECIDED


def derived_number(kind: str, record_id: int, tz_name: str | None, created_ts: int) -> str:
    """``ST20260101-00000007``: a settlement's or transfer-in's number, from its id."""
    return receipt_number(NUMBER_PREFIXES.get(kind, "D"), record_id, tz_name, created_ts)


def delivery(
    status: str,
    command_status: str | None,
    online: bool,
    gateway_lost: bool,
    meter_lost: bool,
) -> str:
    """Where a document's money is on its way to the meter: ``applied``, ``rejected``, ``sent``
    (out to the collector, no answer yet), ``queued`` (waiting for its turn) or ``offline``
    (booked; the collector or the meter is out of contact, so it goes out by itself when they
    are back)."""
    if status == APPLIED:
        return APPLIED_STATE
    if status == REJECTED:
        return REJECTED_STATE
    if not online or gateway_lost or meter_lost:
        return OFFLINE
    if command_status is not None and command_status != "pending":
        return SENT
    return QUEUED


# ``'pending'`` written into the SQL, not bound: the pending sums below read the partial
# indexes on ``status = 'pending'`` (``ix_sales_pending_meter``…), and SQLite plans such a
# query for the value bound, so a statement whose ``status`` is a parameter is prepared anew
# (parsed and planned) every time it is executed: 300 of the 350 us of the receipt's read here.
_PENDING: Any = literal_column(f"'{PENDING}'")


# Core tables, not the ORM's entities: an ORM column in a statement carries annotations whose
# hash is Python code, and SQLAlchemy hashes a statement's cache key on every execute (36 us
# for ``issued``'s read with entities, 10 with tables).
_METERS, _GATEWAYS, _SITES, _DEFAULTS = (table_of(m) for m in (Meter, Gateway, Site, SiteDefaults))
_ACCOUNTS, _CUSTOMERS, _UNITS, _OPERATORS = (
    table_of(m) for m in (Account, Customer, Unit, Operator)
)
_COMMANDS, _RECEIPTS, _SEQUENCES = (table_of(m) for m in (Command, Receipt, PurchaseSequence))


def pending_sum(model: Any, meter_id: Any) -> Any:
    """The amounts of ``model`` (sales, transfers-in, refunds, reversals) still pending on
    ``meter_id``, correlated with the enclosing query's meter only."""
    t = table_of(model)
    return (
        select(func.coalesce(func.sum(t.c.amount_micro_yuan), 0))
        .where(t.c.meter_id == meter_id, t.c.status == _PENDING)
        .correlate(_METERS)
        .scalar_subquery()
    )


def counter_columns() -> dict[str, Any]:
    """What the counter knows of a meter beyond its balance: credits (sales, transfers-in)
    and debits (refunds, reversals) on their way, and its last purchase number; for a query
    that has the meters' table in its FROM (``receipts``' counter facts, ``issued``'s one
    read)."""
    meter_id = _METERS.c.id
    return {
        "credits": pending_sum(Sale, meter_id) + pending_sum(TransferIn, meter_id),
        "debits": pending_sum(Refund, meter_id) + pending_sum(Reversal, meter_id),
        "last_no": select(_SEQUENCES.c.last_no)
        .where(_SEQUENCES.c.meter_id == meter_id)
        .correlate(_METERS)
        .scalar_subquery(),
    }


def _statement(kind: str, counter: bool = False) -> Any:
    """The document query of one kind (built once: ``_STATEMENTS``), for ``:record_id``. With
    ``counter`` (``ISSUING``): instead of the receipt row, which is not written yet, the
    counter's facts its balances come from (``counter_columns``)."""
    table = table_of(MODELS[kind])
    t: Any = table.c
    original = table_of(Sale).alias("original")
    o: Any = original.c
    m, g, site, d = _METERS.c, _GATEWAYS.c, _SITES.c, _DEFAULTS.c
    r = _RECEIPTS.c
    account_id: Any = o.account_id if kind == "reversal" else t.account_id
    columns: dict[str, Any] = {
        "id": t.id,
        "meter_id": t.meter_id,
        "status": t.status,
        "reason": t.reason,
        "operator_id": t.operator_id,
        "created_ts": t.created_ts,
        "amount": t.amount_micro_yuan if kind != "settlement" else literal(0),
        "receipt_no": t.receipt_no if kind in ("sale", "refund", "reversal") else null(),
        "method": (
            t.method if kind in ("sale", "refund") else o.method if kind == "reversal" else null()
        ),
        "purchase_no": t.purchase_no if kind == "sale" else null(),
        "original": o.receipt_no if kind == "reversal" else null(),
        "rev_note": t.note if kind == "reversal" else null(),
        "settled": t.balance_micro_yuan if kind == "settlement" else null(),
        "refund_due": t.refund_due_micro_yuan if kind == "settlement" else null(),
        "debt_owed": t.debt_owed_micro_yuan if kind == "settlement" else null(),
        "meter_name": m.name,
        "meter_balance": m.balance_micro_yuan,
        "meter_relay": m.relay,
        "meter_lost": m.lost_contact,
        "online": g.online,
        "gateway_lost": g.lost_contact,
        "site_name": site.name,
        "timezone": site.timezone,
        "header": d.receipt_header,
        "copies": d.receipt_copies,
        "account_number": _ACCOUNTS.c.number,
        "tenant": _CUSTOMERS.c.name,
        "unit": _UNITS.c.number,
        "username": _OPERATORS.c.username,
        "display_name": _OPERATORS.c.display_name,
        "command_status": _COMMANDS.c.status,
        "result_balance": _COMMANDS.c.result_balance_micro_yuan,
    }
    if counter:
        columns.update(counter_columns())
    else:
        columns.update(
            {
                "r_before": r.balance_before_micro_yuan,
                "r_after": r.balance_after_micro_yuan,
                "r_count": r.purchase_count,
                "r_tendered": r.tendered_micro_yuan,
                "r_change": r.change_micro_yuan,
                "r_note": r.note,
                "r_prints": r.prints,
            }
        )
    joined: Any = table
    if kind == "reversal":
        joined = joined.join(original, o.id == t.sale_id)
    joined = (
        joined.join(_METERS, m.id == t.meter_id)
        .join(_GATEWAYS, g.id == m.gateway_id)
        .join(_SITES, site.id == g.site_id)
        .outerjoin(_DEFAULTS, d.site_id == site.id)
        .outerjoin(_ACCOUNTS, _ACCOUNTS.c.id == account_id)
        .outerjoin(_CUSTOMERS, _CUSTOMERS.c.id == _ACCOUNTS.c.customer_id)
        .outerjoin(_UNITS, _UNITS.c.id == m.unit_id)
        .outerjoin(_OPERATORS, _OPERATORS.c.id == t.operator_id)
        .outerjoin(_COMMANDS, _COMMANDS.c.id == t.command_id)
    )
    if not counter:
        joined = joined.outerjoin(_RECEIPTS, and_(r.kind == kind, r.record_id == t.id))
    stmt = select(*(col.label(name) for name, col in columns.items())).select_from(joined)
    return stmt.where(t.id == bindparam("record_id"))


_STATEMENTS = {kind: _statement(kind) for kind in MODELS}
# The same joins with the counter's facts instead of the receipt (``receipts.issued``).
ISSUING = {kind: _statement(kind, counter=True) for kind in MODELS}


def document(session: Session, kind: str, record_id: int) -> Document:
    """Everything the receipt of one document prints (``NotFoundError`` if there is none)."""
    if kind not in MODELS:
        raise InvalidError(f"no document kind {kind!r}; one of {', '.join(MODELS)}", "kind")
    # On the session's connection, as Core (the ORM's execute path costs as much as the
    # statement); what the caller changed through the ORM is flushed first.
    session.flush()
    row = session.connection().execute(_STATEMENTS[kind], {"record_id": record_id}).first()
    if row is None:
        raise NotFoundError(f"{kind} {record_id} does not exist")
    return of_row(kind, row, row)


def of_row(kind: str, row: Any, r: Any) -> Document:
    """The document from one row of its statement and the receipt's values ``r`` (``r_before``,
    ``r_after``, ``r_count``, ``r_tendered``, ``r_change``, ``r_note``, ``r_prints``: the row
    itself when it joined the receipt; ``receipts.issued`` passes what it just wrote)."""
    amount = int(row.amount or 0)
    if kind == "settlement":
        amount = abs(row.settled or 0)
    doc = Document(
        kind=kind,
        record_id=row.id,
        number=row.receipt_no or derived_number(kind, row.id, row.timezone, row.created_ts),
        created_ts=row.created_ts,
        meter_id=row.meter_id,
        meter_name=row.meter_name or "",
        amount_micro_yuan=amount,
        status=row.status,
        reason=row.reason,
        dispatch=delivery(
            row.status, row.command_status, bool(row.online), row.gateway_lost, row.meter_lost
        ),
        site_name=row.site_name or "",
        header=row.header or row.site_name or "",
        copies=max(1, min(3, int(row.copies or 1))),
        unit=row.unit,
        tenant=row.tenant,
        account_number=row.account_number,
        method=row.method,
        operator=operator_label(row.username, row.display_name),
        original_number=row.original,
        note=r.r_note or row.rev_note or "",
        prints=int(r.r_prints or 0),
        purchase_count=r.r_count if r.r_count is not None else row.purchase_no,
        balance_before_micro_yuan=r.r_before,
        balance_after_micro_yuan=r.r_after,
        tendered_micro_yuan=r.r_tendered,
        change_micro_yuan=r.r_change,
        meter_balance_micro_yuan=row.meter_balance,
        meter_relay=row.meter_relay or "unknown",
    )
    if kind == "settlement":
        doc.settlement = {
            "balance_micro_yuan": row.settled,
            "refund_due_micro_yuan": row.refund_due,
            "debt_owed_micro_yuan": row.debt_owed,
            "outcome": _settlement_outcome(row.status, row.refund_due, row.debt_owed),
        }
    elif doc.balance_before_micro_yuan is None and row.status == APPLIED:
        # Not issued at the counter (a payment order, the API): the edge's own balance after.
        after = row.result_balance
        if after is not None:
            doc.balance_after_micro_yuan = after
            doc.balance_before_micro_yuan = after + amount if kind in OUTGOING else after - amount
    return doc


def _settlement_outcome(status: str, refund_due: int | None, debt_owed: int | None) -> str:
    """``refund`` (credit paid back), ``arrears`` (debt the tenant pays), ``none``, or
    ``pending`` until the collector settles."""
    if status != APPLIED:
        return "pending"
    if refund_due:
        return "refund"
    if debt_owed:
        return "arrears"
    return "none"
