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

from sqlalchemy.orm import Session

from cloud.control import commands
from cloud.errors import QuarantineError
from cloud.models import Gateway, now_ts
from cloud.uplink.batch import ApplyResult, Batch, Loader, UnknownGatewayError, Uplink
from cloud.uplink.gateway import GatewayMessages
from cloud.uplink.meter_messages import MeterMessages
from cloud.uplink.rows import insert_readings
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


def apply_batch(
    session: Session,
    uplinks: list[Uplink],
    *,
    now: int | None = None,
    locked: dict[str, Gateway] | None = None,
) -> ApplyResult:
    """Apply many envelopes in one transaction, each gateway's in the order given (the caller
    commits). The queries are made once for the whole batch (``batch.Loader``), so a batch of
    envelopes from a hundred collectors costs a handful of statements, not a hundred handfuls;
    ``result.parts`` holds each gateway's own result. ``locked``: the gateway rows by id the caller
    has already locked in this transaction, in id order (the bridge's claim); unless it holds
    every gateway of ``uplinks``, they are all locked here."""
    stamp = now if now is not None else now_ts()
    by_gateway: dict[str, list[Uplink]] = defaultdict(list)
    for up in uplinks:
        by_gateway[up.gateway_id].append(up)
    loader = Loader(session)
    if locked is not None and all(gw in locked for gw in by_gateway):
        rows = locked
    else:
        rows = loader.gateways(list(by_gateway))
    appliers = [_Applier(session, rows[gw], stamp, ApplyResult()) for gw in sorted(by_gateway)]
    fresh = loader.fresh([(a.batch, by_gateway[a.batch.gw.id]) for a in appliers])
    valid = [a.validate(ups) for a, ups in zip(appliers, fresh, strict=True)]
    loader.preload(
        [(a.batch, [m for _, m in checked]) for a, checked in zip(appliers, valid, strict=True)]
    )
    for a, checked in zip(appliers, valid, strict=True):
        a.handle(checked)
    # The meters' mirrors now, before settle_checks' alarm queries would autoflush them one
    # UPDATE each (nothing after this changes a meter).
    loader.write_meters(
        {m.id: m for a in appliers for m in a.batch.meters.values()}.values(),
        {m.id: m for a in appliers for m in a.batch.mirrors.values()}.values(),
    )
    commands.enqueue_many(session, [c for a in appliers for c in a.batch.new_commands])
    reading_rows = [row for a in appliers for row in a.batch.reading_rows]
    insert_readings(session, reading_rows)
    result = ApplyResult()
    for a in appliers:
        a.batch.result.readings += len(a.batch.reading_rows)
        a.meters.settle_checks()
        result.parts[a.batch.gw.id] = a.batch.result
        result.add(a.batch.result)
    return result


class _Applier:
    """Applies one gateway's envelopes of a batch: its state (cloud/uplink/batch.py) and the
    handlers of its messages, composed; the queries are the batch's (``batch.Loader``)."""

    def __init__(self, session: Session, gateway: Gateway, now: int, result: ApplyResult) -> None:
        self.batch = Batch(session, gateway, now, result)
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

    def validate(self, fresh: list[Uplink]) -> list[tuple[int, dict[str, Any]]]:
        """The fresh envelopes' messages that pass ``validate_up``; the others quarantined."""
        valid: list[tuple[int, dict[str, Any]]] = []
        for up in fresh:
            self.batch.result.applied.append((self.batch.gw.id, up.seq))
            msgs = up.messages if isinstance(up.messages, list) else [up.messages]
            for msg in msgs:
                try:
                    valid.append((up.seq, wire.validate_up(msg)))
                except (CodecError, ValueError) as exc:
                    self.batch.quarantine(up.seq, msg, str(exc))
        return valid

    def handle(self, valid: list[tuple[int, dict[str, Any]]]) -> None:
        for seq, msg in valid:
            try:
                self.handlers[msg["t"]](msg)
            except QuarantineError as exc:
                self.batch.quarantine(seq, msg, str(exc))
