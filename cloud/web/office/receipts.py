"""What money screens and receipts show, in the page's language: document types, payment
methods, record states, delivery states, settlement outcomes, copy names, document titles
(``title``); and the ``capitals``
filter (大写金额, ``cloud.money.capitals``).

Shared by every screen that makes or lists a money document (售电管理, 客户管理's open and close
account) and by the receipt macros in ``templates/receipts/macros.html``::

    {% from "receipts/macros.html" import till, slip %}
    {{ till(doc) }}          {# doc = cloud.money.receipts.document(session, kind, id) #}

``install(app)`` puts ``money_labels`` (this module) and the filter into Jinja; the sales
blueprint calls it when it is registered.
"""

from __future__ import annotations

import sys
from typing import Any

from flask.sansio.app import App

from cloud.money.capitals import capitals
from cloud.web.i18n import lazy_gettext as _l

KINDS: dict[str, Any] = {
    "sale": _l("Sale"),
    "refund": _l("Refund"),
    "reversal": _l("Reversal"),
    "transfer_in": _l("Transfer-in"),
    "settlement": _l("Account settlement"),
}
METHODS: dict[str, Any] = {
    "cash": _l("Cash"),
    "wechat": _l("WeChat Pay"),
    "alipay": _l("Alipay"),
    "bank": _l("Bank transfer"),
    "card": _l("POS card"),
    "unionpay": _l("UnionPay"),
    "other": _l("Other"),
    "sandbox": _l("Online payment (sandbox)"),
}
# What a cashier can take at the counter (the rest come from payment providers).
COUNTER_METHODS = ("cash", "wechat", "alipay", "bank", "card", "unionpay", "other")
STATUSES: dict[str, Any] = {
    "pending": _l("Pending"),
    "applied": _l("Applied"),
    "rejected": _l("Rejected"),
}
# cloud.money.receipts.dispatch
DISPATCH: dict[str, Any] = {
    "applied": _l("Applied on the meter"),
    "rejected": _l("Refused by the meter"),
    "sent": _l("Sent, waiting for the meter to confirm"),
    "queued": _l("Waiting to be sent"),
    "offline": _l("Booked; it is sent to the meter by itself when the meter is back online"),
}
SETTLEMENTS: dict[str, Any] = {
    "refund": _l("Refund to the tenant"),
    "arrears": _l("Arrears to pay"),
    "none": _l("Nothing to settle"),
    "pending": _l("Waiting for the collector to settle"),
}
COPIES = (_l("Customer copy"), _l("Stub"), _l("Accounting copy"))
# A document's title on its receipt or slip (any other kind: the settlement's).
TITLES: dict[str, Any] = {
    "sale": _l("Sale receipt"),
    "transfer_in": _l("Transfer-in receipt"),
    "refund": _l("Refund slip"),
    "reversal": _l("Reversal slip"),
    "settlement": _l("Account settlement slip"),
}


def kind(name: str) -> str:
    return str(KINDS.get(name, name))


def method(name: str | None) -> str:
    return str(METHODS.get(name or "", name or ""))


def status(name: str) -> str:
    return str(STATUSES.get(name, name))


def dispatch(name: str) -> str:
    return str(DISPATCH.get(name, name))


def settlement(name: str) -> str:
    return str(SETTLEMENTS.get(name, name))


def title(name: str) -> str:
    """The title a document of kind ``name`` prints under (a function, not a macro: it is
    drawn twice on every result page)."""
    return str(TITLES.get(name, TITLES["settlement"]))


def copy_labels(copies: int) -> list[str | None]:
    """One label per printed copy; a single copy has none."""
    if copies <= 1:
        return [None]
    return [str(label) for label in COPIES[: min(copies, len(COPIES))]]


def install(app: App) -> None:
    """Make the labels and the ``capitals`` filter available to templates (``money`` is
    ``cloud.web.office.formatting``'s, like every other number format)."""
    app.jinja_env.globals["money_labels"] = sys.modules[__name__]
    app.jinja_env.filters["capitals"] = capitals
