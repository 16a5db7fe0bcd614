"""Applying what collectors send: the bridge opens an envelope and hands its messages here.

``apply_uplink(session, gateway_id, seq, messages)`` (or ``apply_batch`` for many envelopes in
one transaction) applies ``reading`` / ``state`` / ``event`` / ``result`` / ``need_purchase`` /
``hb`` / ``hello`` messages exactly once: the envelope's (gateway, seq) goes into the inbox under
a unique constraint, and a sequence already there is reported as a duplicate (ack it again,
apply nothing). Readings and events are also unique by (gateway, id). The caller commits; the
ack must go out only after the commit.

A message that cannot be applied (bad field, unknown meter, a result for a command never sent)
is kept in the ``quarantine`` table with the reason; the rest of the envelope still applies and
the envelope is acked, so one bad message cannot wedge a collector's uplink.

Per reading the mirror takes the charge; for the newest reading of a meter it then compares its
totals with the edge's running totals (docs/protocol.md "Charge continuity"): a difference in
charges is a ``charge_gap`` alarm, in credits or refunds a ``ledger_mismatch`` alarm; both
clear by themselves once a later reading agrees. Nothing is guessed or patched.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from cloud.errors import QuarantineError
from cloud.models import Reading, now_ts
from cloud.uplink.batch import ApplyResult, Batch, UnknownGatewayError, Uplink
from cloud.uplink.gateway import GatewayMessages
from cloud.uplink.meter_messages import MeterMessages
from shared.codec import messages as wire
from shared.codec.errors import CodecError

__all__ = ["ApplyResult", "UnknownGatewayError", "Uplink", "apply_batch", "apply_uplink"]


def apply_uplink(
    session: Session,
    gateway_id: str,
    seq: int,
    messages: list[Any],
    *,
    now: int | None = None,
) -> ApplyResult:
    """Apply one envelope's messages (see the module docstring). The caller commits."""
    return apply_batch(session, [Uplink(gateway_id, seq, messages)], now=now)


def apply_batch(session: Session, uplinks: list[Uplink], *, now: int | None = None) -> ApplyResult:
    """Apply many envelopes in one transaction, in the order given (the caller commits)."""
    stamp = now if now is not None else now_ts()
    result = ApplyResult()
    by_gateway: dict[str, list[Uplink]] = defaultdict(list)
    for up in uplinks:
        by_gateway[up.gateway_id].append(up)
    for gateway_id, ups in by_gateway.items():
        _Applier(session, gateway_id, stamp, result).run(ups)
    return result


class _Applier:
    """Applies one gateway's envelopes of a batch with a handful of queries: the batch's state
    (cloud/uplink/batch.py) and the handlers of its messages, composed."""

    def __init__(self, session: Session, gateway_id: str, now: int, result: ApplyResult) -> None:
        self.batch = Batch(session, gateway_id, now, result)
        self.meters = MeterMessages(self.batch)
        self.gateway = GatewayMessages(self.batch)
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "reading": self.meters.reading,
            "state": self.meters.state,
            "event": self.meters.event,
            "result": self.meters.result,
            "need_purchase": self.meters.need_purchase,
            "hb": self.gateway.hb,
            "hello": self.gateway.hello,
        }

    def run(self, ups: list[Uplink]) -> None:
        fresh = self.batch.fresh(ups)
        valid: list[tuple[int, dict[str, Any]]] = []
        for up in fresh:
            self.batch.result.applied.append((self.batch.gw.id, up.seq))
            msgs = up.messages if isinstance(up.messages, list) else [up.messages]
            for msg in msgs:
                try:
                    valid.append((up.seq, wire.validate_up(msg)))
                except (CodecError, ValueError) as exc:
                    self.batch.quarantine(up.seq, msg, str(exc))
        self.batch.preload([m for _, m in valid])
        for seq, msg in valid:
            try:
                self.handlers[msg["t"]](msg)
            except QuarantineError as exc:
                self.batch.quarantine(seq, msg, str(exc))
        if self.batch.reading_rows:
            self.batch.s.execute(insert(Reading), self.batch.reading_rows)
            self.batch.result.readings += len(self.batch.reading_rows)
        self.meters.settle_checks()
