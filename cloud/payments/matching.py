"""Daily reconciliation's matching (B04), as a pure function: the provider's bill × our orders
× the meters' applied purchase numbers → cases. The service (``reconciliation``) gathers the
three inputs from the database and the provider, and stores the cases for the office page.

Case kinds (each one needs a person or a job to act):

* ``provider_only``  the bill has a payment we never saw paid (a lost notification): query
  the provider, mark the order paid, credit it.
* ``local_only``     we hold a paid order the bill does not list (短款): investigate, re-check
  on the next bill (orders paid near midnight may sit on the other day).
* ``amount_differs`` both have it, with different amounts.
* ``refund_differs`` the bill's refunds for an order differ from ours.
* ``not_credited``   paid, but not credited on the meter for more than ``stale_after_s``.
* ``not_applied``    the order says credited, but the meter has not applied its purchase
  number (the ledger and the meter disagree).

Everything else matches and yields nothing: a test plants each kind and checks it is found
and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cloud.payments import lifecycle
from cloud.payments.provider import BillRow

KINDS = (
    "provider_only",
    "local_only",
    "amount_differs",
    "refund_differs",
    "not_credited",
    "not_applied",
)


@dataclass(frozen=True)
class LocalOrder:
    out_trade_no: str
    provider: str
    amount_fen: int
    state: str  # a lifecycle state
    paid_at_s: float | None
    on_bill_day: bool = True  # paid on the bill's (provider-local) day
    refunded_fen: int = 0
    purchase_applied: bool | None = None  # the sale's purchase number applied on the meter
    refunded_on_bill_day: bool = True  # our refund was made on the bill's day


@dataclass(frozen=True)
class Case:
    kind: str
    provider: str
    out_trade_no: str
    bill_amount_fen: int | None
    local_amount_fen: int | None
    detail: str


def _bill_totals(bill: Iterable[BillRow]) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    """Paid and refunded fen per out_trade_no on the bill, and each trade's provider."""
    paid: dict[str, int] = {}
    refunded: dict[str, int] = {}
    provider_of: dict[str, str] = {}
    for row in bill:
        provider_of[row.out_trade_no] = row.provider
        target = paid if row.kind == "payment" else refunded
        target[row.out_trade_no] = target.get(row.out_trade_no, 0) + row.amount_fen
    return paid, refunded, provider_of


def _bill_side(
    paid: dict[str, int],
    refunded: dict[str, int],
    provider_of: dict[str, str],
    local: dict[str, LocalOrder],
) -> list[Case]:
    """What the bill says that our orders do not."""
    cases = []
    for no, fen in sorted(paid.items()):
        order = local.get(no)
        if order is None or not lifecycle.is_paid(order.state):
            cases.append(
                Case(
                    "provider_only",
                    provider_of[no],
                    no,
                    fen,
                    order.amount_fen if order else None,
                    "paid at the provider, not paid here: query and credit",
                )
            )
        elif order.amount_fen != fen:
            cases.append(
                Case(
                    "amount_differs",
                    order.provider,
                    no,
                    fen,
                    order.amount_fen,
                    f"bill {fen} fen, order {order.amount_fen} fen",
                )
            )
    for no, fen in sorted(refunded.items()):
        ours = local[no].refunded_fen if no in local else 0
        if ours != fen:
            cases.append(
                Case(
                    "refund_differs",
                    provider_of[no],
                    no,
                    fen,
                    ours,
                    f"bill refunds {fen} fen, ours {ours} fen",
                )
            )
    return cases


_STUCK = (lifecycle.PAID, lifecycle.CREDITING, lifecycle.CREDIT_FAILED, lifecycle.HELD)


def _order_side(
    order: LocalOrder,
    paid: dict[str, int],
    refunded: dict[str, int],
    now_s: float,
    stale_after_s: float,
) -> list[Case]:
    """What one paid order of ours says that the bill or the meter does not."""
    no, cases = order.out_trade_no, []
    if order.on_bill_day and no not in paid:
        cases.append(
            Case(
                "local_only",
                order.provider,
                no,
                None,
                order.amount_fen,
                "paid here, not on the provider's bill",
            )
        )
    if order.refunded_on_bill_day and order.refunded_fen and no not in refunded:
        cases.append(
            Case(
                "refund_differs",
                order.provider,
                no,
                0,
                order.refunded_fen,
                f"we refunded {order.refunded_fen} fen, the bill shows none",
            )
        )
    waited_s = now_s - order.paid_at_s if order.paid_at_s is not None else 0.0
    if order.state in _STUCK and waited_s > stale_after_s:
        cases.append(
            Case(
                "not_credited",
                order.provider,
                no,
                paid.get(no),
                order.amount_fen,
                f"paid {int(waited_s // 60)} min ago, still {order.state}",
            )
        )
    if order.state == lifecycle.CREDITED and order.purchase_applied is False:
        cases.append(
            Case(
                "not_applied",
                order.provider,
                no,
                paid.get(no),
                order.amount_fen,
                "credited here, the meter has not applied its purchase number",
            )
        )
    return cases


def match(
    bill: Iterable[BillRow],
    orders: Iterable[LocalOrder],
    *,
    now_s: float,
    stale_after_s: float = 30 * 60,
) -> list[Case]:
    """The cases for one provider-day. ``orders``: ours paid on that day (by the provider's
    local day, ``on_bill_day``) plus any still not credited; the bill: that day's rows."""
    paid, refunded, provider_of = _bill_totals(bill)
    local = {o.out_trade_no: o for o in orders}
    cases = _bill_side(paid, refunded, provider_of, local)
    for _, order in sorted(local.items()):
        if lifecycle.is_paid(order.state):
            cases.extend(_order_side(order, paid, refunded, now_s, stale_after_s))
    return cases
