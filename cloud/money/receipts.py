"""Receipts of money documents: what the counter knew when a document was made, and the print
log. What a receipt prints is ``cloud.money.printable`` (re-exported here: ``document``,
``Document``).

A document is a sale, refund, reversal, transfer-in or close-account settlement. Its number is
the record's own ``receipt_no`` (settlements and transfers-in, which have none, get
``ST<date>-<id>`` / ``TI<date>-<id>`` the same way), so a number is never reused. The screen
that makes a document calls ``issue`` in the same transaction, right after the money service
(``sales.sell``, ``refunds.refund``, ``reversals.reverse``, ``settlement.close_account``…):

- balance before and after as the counter sees it: the mirror balance plus credits still on
  their way, less debits still on their way (``counter_balance``). A document made without
  ``issue`` (a payment order, the API) shows the edge's own balance once applied;
- tendered and change (cash), and the reason of a refund or a reversal;
- the purchase count: a sale's own purchase number, else the meter's last one.

``issued`` is ``issue`` for a screen that shows the document next (the cashier's sale, after
every sale, inside its write transaction): the counter's facts come with the document's own
read (``printable.ISSUING``), so the sale's receipt is one read and two inserts (the receipt,
its audit row), and the document is built from what was written. Both run Core statements, no
ORM unit of work. The pending sums write ``'pending'`` into their SQL (``printable``: SQLite
prepares a statement anew on every execute when a parameter decides whether a partial index
applies). ``printed`` counts every print and writes it to the operation log: the first is
``receipt.print``, every later one ``receipt.reprint`` (补打) with the count.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cloud import audit
from cloud.audit import Actor, record
from cloud.db import Prepared
from cloud.errors import InvalidError, NotFoundError
from cloud.models import (
    Gateway,
    Meter,
    Receipt,
    Site,
    now_ts,
)
from cloud.models.base import table_of
from cloud.money.printable import (  # noqa: F401  (the receipt's reading side, re-exported)
    APPLIED_STATE,
    DECIDED,
    ISSUING,
    MODELS,
    NUMBER_PREFIXES,
    OFFLINE,
    OUTGOING,
    QUEUED,
    REJECTED_STATE,
    SENT,
    Document,
    counter_columns,
    delivery,
    derived_number,
    document,
    of_row,
)

_RECEIPTS = table_of(Receipt)


def _counter_facts() -> Any:
    """The meter's balance, credits and debits on their way, and its last purchase number
    (for ``:meter``; built once)."""
    facts = counter_columns()
    return select(
        Meter.balance_micro_yuan, *(col.label(name) for name, col in facts.items())
    ).where(Meter.id == bindparam("meter"))


_COUNTER_FACTS = _counter_facts()
# ``issued``'s read, on the session's cursor (``Prepared``: SQLAlchemy's execution of its 37
# columns cost six times SQLite's).
_ISSUING = {kind: Prepared(stmt) for kind, stmt in ISSUING.items()}


def pending_credits(session: Session, meter_id: str) -> int:
    """Sales and transfers-in issued to the meter but not yet applied by the edge."""
    row = session.execute(_COUNTER_FACTS, {"meter": meter_id}).first()
    return int(row.credits) if row is not None else 0


def counter_balance(session: Session, meter: Meter) -> int:
    """The balance the counter shows: the mirror, plus credits on their way, less debits on
    their way (what the meter will hold once they land, consumption aside)."""
    row = session.execute(_COUNTER_FACTS, {"meter": meter.id}).one()
    return int(row.balance_micro_yuan) + int(row.credits) - int(row.debits)


def record_of(session: Session, kind: str, record_id: int) -> Any:
    model = MODELS.get(kind)
    if model is None:
        raise InvalidError(f"no document kind {kind!r}; one of {', '.join(MODELS)}", "kind")
    item = session.get(model, record_id)
    if item is None:
        raise NotFoundError(f"{kind} {record_id} does not exist")
    return item


def number_of(session: Session, kind: str, item: Any) -> str:
    """The document number: the record's ``receipt_no``; for records without one (settlements,
    transfers-in) made the same way from their id, so it is unique and never reused."""
    own = getattr(item, "receipt_no", None)
    if own:
        return str(own)
    return derived_number(kind, item.id, _timezone(session, item.meter_id), item.created_ts)


def _timezone(session: Session, meter_id: str) -> str:
    tz = session.scalar(
        select(Site.timezone)
        .join(Gateway, Gateway.site_id == Site.id)
        .join(Meter, Meter.gateway_id == Gateway.id)
        .where(Meter.id == meter_id)
    )
    return tz or "UTC"


def _insert(make: Any) -> Any:
    """INSERT … ON CONFLICT (kind, record_id) DO NOTHING: issuing one twice keeps the first."""
    return (
        make(_RECEIPTS)
        .on_conflict_do_nothing(index_elements=["kind", "record_id"])
        .returning(_RECEIPTS.c.id)
    )


# On the session's cursor (``Prepared``), as ``issued``'s read.
_INSERTS = {
    "postgresql": Prepared(_insert(postgresql.insert)),
    "sqlite": Prepared(_insert(sqlite.insert)),
}


def _change(kind: str, item: Any, tendered_micro_yuan: int | None) -> int | None:
    """The change of the amount tendered (``InvalidError`` when it is less than the amount)."""
    if kind not in MODELS:
        raise InvalidError(f"no document kind {kind!r}; one of {', '.join(MODELS)}", "kind")
    if tendered_micro_yuan is None:
        return None
    amount = int(getattr(item, "amount_micro_yuan", 0) or 0)
    if tendered_micro_yuan < amount:
        raise InvalidError(
            f"tendered {tendered_micro_yuan} micro-yuan is less than the amount {amount}",
            "tendered",
        )
    return tendered_micro_yuan - amount


def _keep(
    session: Session,
    kind: str,
    item: Any,
    actor: Actor,
    facts: Any,
    number: str,
    tendered_micro_yuan: int | None,
    change: int | None,
    note: str,
    stamp: int,
) -> tuple[int | None, dict[str, Any]]:
    """Write the receipt row from the counter's ``facts`` (balance, credits, debits, last_no)
    and its audit row (``number``: the document's); returns the receipt's id (None when the
    document had one already: nothing is written) and the row's values."""
    amount = int(getattr(item, "amount_micro_yuan", 0) or 0)
    after = int(facts.balance_micro_yuan) + int(facts.credits) - int(facts.debits)
    before = after + amount if kind in OUTGOING else after - amount
    if kind == "settlement":
        before, after = after, 0
    count = getattr(item, "purchase_no", None)
    values = {
        "kind": kind,
        "record_id": item.id,
        "meter_id": item.meter_id,
        "balance_before_micro_yuan": before,
        "balance_after_micro_yuan": after,
        "purchase_count": count if count is not None else facts.last_no,
        "tendered_micro_yuan": tendered_micro_yuan,
        "change_micro_yuan": change,
        "note": str(note or "")[:500],
        "prints": 0,
        "operator_id": actor.operator_id,
        "created_ts": stamp,
    }
    dialect = session.connection().dialect.name
    receipt_id = _INSERTS[dialect].scalar(session, values)
    if receipt_id is None:
        return None, values
    audit.write(
        session,
        actor,
        "receipt.issue",
        kind,
        number,
        after={
            "record": item.id,
            "balance_before_micro_yuan": before,
            "balance_after_micro_yuan": after,
            "tendered_micro_yuan": tendered_micro_yuan,
            "change_micro_yuan": change,
            "note": values["note"],
        },
        now=stamp,
    )
    return int(receipt_id), values


def issue(
    session: Session,
    kind: str,
    item: Any,
    actor: Actor,
    *,
    tendered_micro_yuan: int | None = None,
    note: str = "",
    now: int | None = None,
) -> int | None:
    """Keep what the counter knew of a document just made (see the module doc); returns the
    receipt's id, or None when the document had one already (the first is kept). Call it in
    the money service's transaction, after it. ``issued`` does the same and reads the
    document with it."""
    change = _change(kind, item, tendered_micro_yuan)
    stamp = now if now is not None else now_ts()
    session.flush()  # the services' ORM rows (refunds, reversals) before the Core reads
    facts = session.connection().execute(_COUNTER_FACTS, {"meter": item.meter_id}).first()
    if facts is None:
        raise NotFoundError(f"meter {item.meter_id!r} does not exist")
    receipt_id, _values = _keep(
        session,
        kind,
        item,
        actor,
        facts,
        number_of(session, kind, item),
        tendered_micro_yuan,
        change,
        note,
        stamp,
    )
    return receipt_id


class _Facts(NamedTuple):
    """The counter's facts as ``_keep`` reads them, from ``issued``'s one row."""

    balance_micro_yuan: int
    credits: int
    debits: int
    last_no: int | None


class _Kept:
    """The receipt's values as ``printable.of_row`` reads them (``r_before`` …)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.r_before = values["balance_before_micro_yuan"]
        self.r_after = values["balance_after_micro_yuan"]
        self.r_count = values["purchase_count"]
        self.r_tendered = values["tendered_micro_yuan"]
        self.r_change = values["change_micro_yuan"]
        self.r_note = values["note"]
        self.r_prints = values["prints"]


def issued(
    session: Session,
    kind: str,
    item: Any,
    actor: Actor,
    *,
    tendered_micro_yuan: int | None = None,
    note: str = "",
    now: int | None = None,
) -> Document:
    """``issue``, and the document as ``document`` reads it once the receipt is written, from
    one read instead of two: the document's own statement with the counter's facts in the
    place of the receipt's row (``printable.ISSUING``), whose balances are then written and
    printed. The cashier's sale: its result page shows the document right away. A document
    that had its receipt already is read again (what was kept first is what prints)."""
    change = _change(kind, item, tendered_micro_yuan)
    stamp = now if now is not None else now_ts()
    session.flush()  # the services' ORM rows (refunds, reversals) before the Core reads
    row = _ISSUING[kind].first(session, record_id=item.id)
    if row is None:
        raise NotFoundError(f"{kind} {item.id} does not exist")
    number = row.receipt_no or derived_number(kind, row.id, row.timezone, row.created_ts)
    facts = _Facts(row.meter_balance, row.credits, row.debits, row.last_no)
    receipt_id, values = _keep(
        session, kind, item, actor, facts, number, tendered_micro_yuan, change, note, stamp
    )
    if receipt_id is None:
        return document(session, kind, item.id)
    return of_row(kind, row, _Kept(values))


def printed(
    session: Session, kind: str, record_id: int, actor: Actor, *, now: int | None = None
) -> Receipt:
    """Count one print of a document and log it (``receipt.print`` the first time,
    ``receipt.reprint`` with the count after). A document never issued gets its row now."""
    stamp = now if now is not None else now_ts()
    item = record_of(session, kind, record_id)
    receipt = session.scalars(
        select(Receipt)
        .where(Receipt.kind == kind, Receipt.record_id == record_id)
        .with_for_update()
    ).first()
    if receipt is None:
        receipt = Receipt(
            kind=kind,
            record_id=record_id,
            meter_id=item.meter_id,
            prints=0,
            operator_id=actor.operator_id,
            created_ts=stamp,
        )
        session.add(receipt)
    receipt.prints = (receipt.prints or 0) + 1
    receipt.last_printed_ts = stamp
    session.flush()
    record(
        session,
        actor,
        "receipt.print" if receipt.prints == 1 else "receipt.reprint",
        kind,
        number_of(session, kind, item),
        after={"record": record_id, "prints": receipt.prints},
        now=stamp,
    )
    return receipt
