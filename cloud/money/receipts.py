"""Receipts of money documents: what a till receipt (小票) or an A5 slip says, and the print log.

A document is a sale, refund, reversal, transfer-in or close-account settlement. Its number is
the record's own ``receipt_no`` (settlements, which have none, get ``ST<date>-<id>`` the same
way), so a number is never reused. The screen that makes a document calls ``issue`` in the
same transaction, right after the money service (``sales.sell``, ``refunds.refund``,
``reversals.reverse``, ``settlement.close_account``…), to keep what the counter knew then:

- balance before and after as the counter sees it: the mirror balance plus credits still on
  their way, less debits still on their way (``counter_balance``). The edge's own balance
  arrives with its result (``dispatch``); a document made by the API without ``issue`` (a
  payment order) shows that one once applied;
- tendered and change (cash), and the reason of a refund or a reversal;
- the purchase count: a sale's own purchase number, else the meter's last one.

``printed`` counts every print and writes it to the operation log: the first is
``receipt.print``, every later one ``receipt.reprint`` (补打) with the count. ``document``
gathers everything a template prints (``templates/receipts/``), ``dispatch`` the delivery state
the result page polls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
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
    now_ts,
)
from cloud.money.checks import pending_debits
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
# Delivery states (``dispatch``): the result page and the receipt show one of these.
APPLIED_STATE, REJECTED_STATE, SENT, QUEUED, OFFLINE = (
    "applied",
    "rejected",
    "sent",
    "queued",
    "offline",
)


@dataclass
class Document:
    """Everything a receipt or slip prints (amounts in micro-yuan, times UTC epoch seconds)."""

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

    @property
    def reprint(self) -> bool:
        """A print after the first is a reprint (补打)."""
        return self.prints > 1


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


# Numbers of the records that have no ``receipt_no`` of their own.
NUMBER_PREFIXES = {"settlement": "ST", "transfer_in": "TI"}


def derived_number(kind: str, record_id: int, tz_name: str | None, created_ts: int) -> str:
    """``ST20260101-00000007``: a settlement's or transfer-in's number, from its id."""
    return receipt_number(NUMBER_PREFIXES.get(kind, "D"), record_id, tz_name, created_ts)


def _timezone(session: Session, meter_id: str) -> str:
    tz = session.scalar(
        select(Site.timezone)
        .join(Gateway, Gateway.site_id == Site.id)
        .join(Meter, Meter.gateway_id == Gateway.id)
        .where(Meter.id == meter_id)
    )
    return tz or "UTC"


def pending_credits(session: Session, meter_id: str) -> int:
    """Sales and transfers-in issued to the meter but not yet applied by the edge."""
    total = 0
    for model in (Sale, TransferIn):
        total += int(
            session.scalar(
                select(func.coalesce(func.sum(model.amount_micro_yuan), 0)).where(
                    model.meter_id == meter_id, model.status == PENDING
                )
            )
            or 0
        )
    return total


def counter_balance(session: Session, meter: Meter) -> int:
    """The balance the counter shows: the mirror, plus credits on their way, less debits on
    their way (what the meter will hold once they land, consumption aside)."""
    return (
        meter.balance_micro_yuan
        + pending_credits(session, meter.id)
        - pending_debits(session, meter.id)
    )


def issue(
    session: Session,
    kind: str,
    item: Any,
    actor: Actor,
    *,
    tendered_micro_yuan: int | None = None,
    note: str = "",
    now: int | None = None,
) -> Receipt:
    """Keep what the counter knew of a document just made (see the module doc). Call it in the
    transaction of the money service, after it. Issuing one twice returns the first."""
    existing = _receipt(session, kind, item.id)
    if existing is not None:
        return existing
    stamp = now if now is not None else now_ts()
    session.flush()
    meter = session.get(Meter, item.meter_id)
    if meter is None:
        raise NotFoundError(f"meter {item.meter_id!r} does not exist")
    amount = int(getattr(item, "amount_micro_yuan", 0) or 0)
    after = counter_balance(session, meter)
    before = after + amount if kind in OUTGOING else after - amount
    if kind == "settlement":
        before, after = after, 0
    change = None
    if tendered_micro_yuan is not None:
        if tendered_micro_yuan < amount:
            raise InvalidError(
                f"tendered {tendered_micro_yuan} micro-yuan is less than the amount {amount}",
                "tendered",
            )
        change = tendered_micro_yuan - amount
    count = getattr(item, "purchase_no", None)
    if count is None:
        count = session.scalar(
            select(PurchaseSequence.last_no).where(PurchaseSequence.meter_id == meter.id)
        )
    receipt = Receipt(
        kind=kind,
        record_id=item.id,
        meter_id=meter.id,
        balance_before_micro_yuan=before,
        balance_after_micro_yuan=after,
        purchase_count=count,
        tendered_micro_yuan=tendered_micro_yuan,
        change_micro_yuan=change,
        note=str(note or "")[:500],
        prints=0,
        operator_id=actor.operator_id,
        created_ts=stamp,
    )
    session.add(receipt)
    session.flush()
    record(
        session,
        actor,
        "receipt.issue",
        kind,
        number_of(session, kind, item),
        after={
            "record": item.id,
            "balance_before_micro_yuan": before,
            "balance_after_micro_yuan": after,
            "tendered_micro_yuan": tendered_micro_yuan,
            "change_micro_yuan": change,
            "note": receipt.note,
        },
        now=stamp,
    )
    return receipt


def _receipt(session: Session, kind: str, record_id: int) -> Receipt | None:
    return session.scalars(
        select(Receipt).where(Receipt.kind == kind, Receipt.record_id == record_id)
    ).first()


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


def dispatch(session: Session, item: Any) -> str:
    """Where a document's money is on its way to the meter: ``applied``, ``rejected``,
    ``sent`` (out to the collector, no answer yet), ``queued`` (waiting for its turn) or
    ``offline`` (booked; the collector or the meter is out of contact, so it goes out by
    itself when they are back)."""
    if item.status == APPLIED:
        return APPLIED_STATE
    if item.status == REJECTED:
        return REJECTED_STATE
    meter = session.get(Meter, item.meter_id)
    gateway = session.get(Gateway, meter.gateway_id) if meter is not None else None
    if meter is None or gateway is None:
        return OFFLINE
    if not gateway.online or gateway.lost_contact or meter.lost_contact:
        return OFFLINE
    command = session.get(Command, item.command_id) if item.command_id is not None else None
    if command is not None and command.status not in ("pending",):
        return SENT
    return QUEUED


def _operator(session: Session, operator_id: int | None) -> str:
    if operator_id is None:
        return ""
    op = session.get(Operator, operator_id)
    return f"{op.username} {op.display_name}".strip() if op is not None else ""


def _edge_balances(session: Session, kind: str, item: Any) -> tuple[int | None, int | None]:
    """Before/after from the edge's result, for a document the counter did not issue."""
    if item.status != APPLIED or item.command_id is None:
        return None, None
    after = session.scalar(
        select(Command.result_balance_micro_yuan).where(Command.id == item.command_id)
    )
    if after is None:
        return None, None
    amount = int(getattr(item, "amount_micro_yuan", 0) or 0)
    return (after + amount if kind in OUTGOING else after - amount), after


def document(session: Session, kind: str, record_id: int) -> Document:
    """Everything the receipt of one document prints."""
    item = record_of(session, kind, record_id)
    meter = session.get(Meter, item.meter_id)
    assert meter is not None  # a money record's meter is never deleted
    gateway = session.get(Gateway, meter.gateway_id)
    site = session.get(Site, gateway.site_id) if gateway is not None else None
    defaults = session.get(SiteDefaults, site.id) if site is not None else None
    account_id = getattr(item, "account_id", None)
    if kind == "reversal":
        account_id = item.sale.account_id
    account = session.get(Account, account_id) if account_id is not None else None
    customer = session.get(Customer, account.customer_id) if account is not None else None
    unit = session.get(Unit, meter.unit_id) if meter.unit_id is not None else None
    receipt = _receipt(session, kind, record_id)
    amount = int(getattr(item, "amount_micro_yuan", 0) or 0)
    doc = Document(
        kind=kind,
        record_id=item.id,
        number=number_of(session, kind, item),
        created_ts=item.created_ts,
        meter_id=meter.id,
        meter_name=meter.name or "",
        amount_micro_yuan=amount,
        status=item.status,
        reason=item.reason,
        dispatch=dispatch(session, item),
        site_name=site.name if site is not None else "",
        header=(defaults.receipt_header if defaults is not None else None)
        or (site.name if site is not None else ""),
        copies=max(1, min(3, int(defaults.receipt_copies if defaults is not None else 1))),
        unit=unit.number if unit is not None else None,
        tenant=customer.name if customer is not None else None,
        account_number=account.number if account is not None else None,
        method=getattr(item, "method", None),
        operator=_operator(session, item.operator_id),
    )
    if kind == "reversal":
        doc.original_number = item.sale.receipt_no
        doc.method = item.sale.method
        doc.note = item.note or ""
    if kind == "settlement":
        doc.amount_micro_yuan = abs(item.balance_micro_yuan or 0)
        doc.settlement = {
            "balance_micro_yuan": item.balance_micro_yuan,
            "refund_due_micro_yuan": item.refund_due_micro_yuan,
            "debt_owed_micro_yuan": item.debt_owed_micro_yuan,
            "outcome": _settlement_outcome(item),
        }
    if receipt is not None:
        doc.balance_before_micro_yuan = receipt.balance_before_micro_yuan
        doc.balance_after_micro_yuan = receipt.balance_after_micro_yuan
        doc.purchase_count = receipt.purchase_count
        doc.tendered_micro_yuan = receipt.tendered_micro_yuan
        doc.change_micro_yuan = receipt.change_micro_yuan
        doc.note = receipt.note or doc.note
        doc.prints = receipt.prints
    if doc.balance_before_micro_yuan is None and kind != "settlement":
        doc.balance_before_micro_yuan, doc.balance_after_micro_yuan = _edge_balances(
            session, kind, item
        )
    if doc.purchase_count is None:
        doc.purchase_count = getattr(item, "purchase_no", None)
    return doc


def _settlement_outcome(item: Settlement) -> str:
    """``refund`` (退款: credit paid back), ``arrears`` (补缴: debt the tenant pays), ``none``
    (无费用), or ``pending`` until the collector settles."""
    if item.status != APPLIED:
        return "pending"
    if item.refund_due_micro_yuan:
        return "refund"
    if item.debt_owed_micro_yuan:
        return "arrears"
    return "none"
