"""The cross-check of the cloud's ledger mirror against the edge's running totals, done at
each meter's newest reading (docs/protocol.md "Charge continuity").

The uplink is usually applied in the edge's order, so at a reading the mirror has counted
exactly what the edge had when it sent it: every earlier charge, and every credit and refund
whose result came before. An envelope lost by the broker and resent (the collector resends at
once when it sees a later one acked) arrives after later ones; then a reading can predate a
result the cloud already applied. The comparison is causal: readings and results carry the
collector's message ids (one counter, its outbox), and the mirror remembers the id of the
newest money result it applied (``Meter.money_result_id``); a reading with a smaller id was
sent before that result, so its credits and refunds are not compared (:func:`predates_money`).
A difference is never patched or guessed: it is an alarm (``charge_gap`` for charges,
``ledger_mismatch`` for credits/refunds) that clears when a later reading agrees.
"""

from __future__ import annotations

from typing import Any

from cloud.money.ledger import Totalled


def charge_gap(meter: Totalled, edge_charges: int | None, rid: int) -> dict[str, Any] | None:
    """The detail of a ``charge_gap`` alarm when the mirror's charges differ from the edge's
    running total (a reading is missing or late), else None."""
    if edge_charges is None or edge_charges == meter.charges_micro_yuan:
        return None
    return {
        "reading_id": rid,
        "mirror_charges_micro_yuan": meter.charges_micro_yuan,
        "edge_charges_micro_yuan": edge_charges,
    }


def predates_money(meter: Totalled, rid: int) -> bool:
    """Whether reading ``rid`` was sent before the newest money result the mirror counts."""
    return meter.money_result_id is not None and rid < meter.money_result_id


def ledger_mismatch(meter: Totalled, msg: dict[str, Any], rid: int) -> dict[str, Any] | None:
    """The detail of a ``ledger_mismatch`` alarm when the edge's credits or refunds differ from
    the mirror's, or the edge's own identity fails, at a reading, else None."""
    edge = (msg["credits_micro_yuan"], msg["refunds_micro_yuan"])
    mirror = (meter.credits_micro_yuan, meter.refunds_micro_yuan)
    edge_identity = msg["balance_micro_yuan"] == (
        msg["credits_micro_yuan"] - msg["refunds_micro_yuan"] - msg["charges_micro_yuan"]
    )
    if edge == mirror and edge_identity:
        return None
    return {
        "reading_id": rid,
        "mirror": {"credits_micro_yuan": mirror[0], "refunds_micro_yuan": mirror[1]},
        "edge": {
            "credits_micro_yuan": edge[0],
            "refunds_micro_yuan": edge[1],
            "balance_micro_yuan": msg["balance_micro_yuan"],
            "charges_micro_yuan": msg["charges_micro_yuan"],
        },
        "edge_identity_holds": edge_identity,
    }
