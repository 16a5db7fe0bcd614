"""A tenant's notification numbers (``NotifyRecipient``): where their texts go, in which language,
and which kinds each number takes. With none of their own, the phone on file gets everything in
zh-CN (``sources.tenant_recipients``); the office adds, pauses and removes numbers here. Every
change is audited; the caller commits."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.audit import Actor, record
from cloud.errors import ConflictError, InvalidError, NotFoundError
from cloud.models import Customer, NotifyRecipient, now_ts
from cloud.notify.outbox import check_phone, digits
from cloud.notify.templates import KINDS, LANGS

#: the kinds a tenant's number can take (the office's own kinds go to the site's number)
TENANT_KINDS = ("alarm1", "alarm2", "arrears", "tripped", "restored", "topup", "runway")


def numbers_of(session: Session, customer_id: int) -> list[dict[str, Any]]:
    """Where the customer's texts go, as the notifier decides it: their own numbers, else the
    phone on file (``own`` False), in zh-CN, every kind."""
    rows = list(
        session.scalars(
            select(NotifyRecipient)
            .where(NotifyRecipient.customer_id == customer_id)
            .order_by(NotifyRecipient.id)
        )
    )
    if rows:
        return [
            {"id": r.id, "phone": r.phone, "lang": r.lang, "kinds": list(r.kinds or []),
             "active": r.active, "note": r.note, "own": True}
            for r in rows
        ]  # fmt: skip
    customer = session.get(Customer, customer_id)
    if customer is None or not customer.phone:
        return []
    return [{"id": None, "phone": customer.phone, "lang": "zh_CN", "kinds": [], "active": True,
             "note": "", "own": False}]  # fmt: skip


def _customer(session: Session, customer_id: int) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(f"customer {customer_id} does not exist")
    return customer


def add(
    session: Session,
    customer_id: int,
    phone: str,
    actor: Actor,
    *,
    lang: str = "zh_CN",
    kinds: Iterable[str] = (),
    note: str = "",
    now: int | None = None,
) -> NotifyRecipient:
    """A number for the customer's texts. ``kinds`` empty = every kind."""
    _customer(session, customer_id)
    number = check_phone(phone, "phone")
    if lang not in LANGS:
        raise InvalidError(f"language must be one of {', '.join(LANGS)}", "lang")
    chosen = sorted(set(kinds))
    unknown = [k for k in chosen if k not in KINDS or k not in TENANT_KINDS]
    if unknown:
        raise InvalidError(f"unknown message kind {unknown[0]!r}", "kinds")
    if len(note) > 200:
        raise InvalidError("a note is at most 200 characters", "note")
    existing = session.scalars(
        select(NotifyRecipient).where(NotifyRecipient.customer_id == customer_id)
    )
    if any(digits(r.phone) == digits(number) for r in existing):
        raise ConflictError(f"{number} is already one of this tenant's numbers", "phone")
    stamp = now if now is not None else now_ts()
    row = NotifyRecipient(
        customer_id=customer_id, phone=number, lang=lang, kinds=chosen or None, active=True,
        note=note.strip(), created_ts=stamp,
    )  # fmt: skip
    session.add(row)
    session.flush()
    record(session, actor, "notify.number_add", "notify_recipient", row.id,
           after={"customer": customer_id, "phone": number, "lang": lang, "kinds": chosen},
           now=stamp)  # fmt: skip
    return row


def _get(session: Session, recipient_id: int) -> NotifyRecipient:
    row = session.get(NotifyRecipient, recipient_id)
    if row is None:
        raise NotFoundError(f"notification number {recipient_id} does not exist")
    return row


def set_active(
    session: Session, recipient_id: int, active: bool, actor: Actor, now: int | None = None
) -> NotifyRecipient:
    """Pause a number (no texts to it) or resume it."""
    row = _get(session, recipient_id)
    before = row.active
    row.active = active
    record(session, actor, "notify.number_pause" if not active else "notify.number_resume",
           "notify_recipient", row.id, before={"active": before}, after={"active": active},
           now=now)  # fmt: skip
    return row


def remove(session: Session, recipient_id: int, actor: Actor, now: int | None = None) -> int:
    """Remove a number; returns its customer's id."""
    row = _get(session, recipient_id)
    customer_id = row.customer_id
    record(session, actor, "notify.number_remove", "notify_recipient", row.id,
           before={"customer": customer_id, "phone": row.phone}, now=now)  # fmt: skip
    session.delete(row)
    return customer_id
