"""What the counter's money forms share: the idempotency key a form carries, the dry run that
asks the money service itself whether it would accept (so the confirm step never promises what
the service then refuses), and the refusals worded for the cashier.

A form gets its key when it is first shown (``new_key``); the check step and the confirm step
post the same key, so a double click, a resent form or the browser's back-and-resubmit reach
the service with one key and it sells (or refunds) once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from flask_babel import gettext as _

from cloud.errors import ServiceError
from cloud.web.office.formatting import yuan
from cloud.web.office.forms import Form
from cloud.web.office.sales.lookup import Panel
from cloud.web.office.security import db

KEY_PREFIX = "web-"


def new_key() -> str:
    """A fresh idempotency key for one form."""
    return KEY_PREFIX + secrets.token_urlsafe(18)


def form_key(form: Form) -> str:
    """The form's key as sent (checked by the service; a missing one marks the form)."""
    key = form.value("key")
    if not key.startswith(KEY_PREFIX) or len(key) > 64:
        form.fail(None, _("The form expired or was changed. Reload the page and try again."))
    return key


def dry_run(action: Callable[[], Any]) -> ServiceError | None:
    """Run a money service in a savepoint and undo it: the service's own verdict (``None``:
    it would accept) without anything written."""
    nested = db().begin_nested()
    try:
        action()
    except ServiceError as exc:
        nested.rollback()
        return exc
    nested.rollback()
    return None


def sale_refusal(exc: ServiceError, amount: int, panel: Panel) -> str:
    """A refused sale in the cashier's words: the per-sale limit and the hoarding cap from
    the same figures the sale checks, else the service's own message."""
    if exc.field == "amount_micro_yuan":
        if amount > panel.max_sale_micro_yuan:
            return _(
                "Refused: ¥%(amount)s is over this site's limit of ¥%(limit)s per sale.",
                amount=yuan(amount),
                limit=yuan(panel.max_sale_micro_yuan),
            )
        room = panel.cap_room_micro_yuan
        if room is not None and amount > room:
            return _(
                "Refused: the meter would hold more than its hoarding cap of ¥%(cap)s "
                "(it holds ¥%(held)s with what is on its way); at most ¥%(room)s can be sold now.",
                cap=yuan(panel.cap_micro_yuan),
                held=yuan(panel.balance_micro_yuan + panel.pending_credits_micro_yuan),
                room=yuan(room),
            )
    return _("Refused: %(reason)s", reason=exc.message)


def refund_refusal(exc: ServiceError, amount: int, panel: Panel) -> str:
    if exc.field == "amount_micro_yuan" and amount > panel.refundable_micro_yuan:
        return _(
            "Refused: at most ¥%(most)s can be refunded now (the balance less refunds "
            "still on their way).",
            most=yuan(panel.refundable_micro_yuan),
        )
    return _("Refused: %(reason)s", reason=exc.message)


def amount_field(form: Form, name: str = "amount") -> int | None:
    """A money amount that must be more than zero."""
    amount = form.yuan(name)
    if amount is not None and amount <= 0:
        form.fail(name, _("Enter an amount above zero."))
        return None
    return amount
