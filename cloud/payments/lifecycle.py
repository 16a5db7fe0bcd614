"""A top-up order's lifecycle, as a table (convention 3): every legal (state, event) pair and
where it leads; anything else raises.

::

    created ──pay──▶ paid ──credit──▶ crediting ──applied──▶ credited
       │  ▲                              │  ▲
     close │ pay (late: the money is real) failed │ retry
       ▼  │                              ▼  │
     closed                          credit_failed ──refund──▶ refunding ──refunded──▶ refunded
                                         │   ▲                    │
                                        hold │ retry           hold (refund refused)
                                         ▼   │                    ▼
                                         held ◀───────────────────┘
                                          └──refund──▶ refunding

* ``paid`` comes only from a verified notification or a query answer, never from the return URL.
* ``crediting``: a sale exists (through ``cloud.money.sales.sell``, the order as its idempotency
  key) and waits for the collector's answer; ``credited`` when the collector applied it.
* ``credit_failed``: the collector rejected the sale or it timed out; ``retry`` sells again
  with the same key (so it can never credit twice), ``refund`` gives the money back through
  the provider, ``hold`` leaves it for staff (e.g. the account was closed meanwhile).
* ``closed`` is ours (unpaid past its timeout) or the provider's (TRADE_CLOSED); a verified
  payment for a closed order still counts, so ``closed --pay--> paid``.
"""

from __future__ import annotations

from cloud.errors import ConflictError

CREATED = "created"
PAID = "paid"
CREDITING = "crediting"
CREDITED = "credited"
CREDIT_FAILED = "credit_failed"
REFUNDING = "refunding"
REFUNDED = "refunded"
HELD = "held"
CLOSED = "closed"
STATES = (CREATED, PAID, CREDITING, CREDITED, CREDIT_FAILED, REFUNDING, REFUNDED, HELD, CLOSED)
FINAL = frozenset({CREDITED, REFUNDED})

TRANSITIONS: dict[tuple[str, str], str] = {
    (CREATED, "pay"): PAID,
    (CREATED, "close"): CLOSED,
    (CLOSED, "pay"): PAID,
    (PAID, "credit"): CREDITING,
    (CREDITING, "applied"): CREDITED,
    (CREDITING, "failed"): CREDIT_FAILED,
    (CREDIT_FAILED, "retry"): CREDITING,
    (CREDIT_FAILED, "refund"): REFUNDING,
    (CREDIT_FAILED, "hold"): HELD,
    (HELD, "retry"): CREDITING,
    (HELD, "refund"): REFUNDING,
    (REFUNDING, "refunded"): REFUNDED,
    (REFUNDING, "hold"): HELD,
}
EVENTS = tuple(sorted({event for _, event in TRANSITIONS}))


class IllegalTransitionError(ConflictError):
    code = "illegal_transition"


def next_state(state: str, event: str) -> str:
    """Where ``event`` takes an order in ``state``; ``IllegalTransitionError`` (409) otherwise."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransitionError(
            f"an order that is {state} cannot take {event}", "state"
        ) from None


def is_paid(state: str) -> bool:
    """Money was received for an order in ``state`` (whatever became of it since)."""
    return state not in (CREATED, CLOSED)
