"""One gateway's envelopes of an ingest batch: the state the message handlers share
(cloud/uplink/meter_messages.py, cloud/uplink/gateway.py) and the queries that load it at once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cloud.control import lifecycle
from cloud.errors import QuarantineError
from cloud.models import Alarm, Command, Event, Gateway, InboxEntry, Meter, Quarantine, Reading
from cloud.monitoring import alarms

CHECK_KINDS = (alarms.CHARGE_GAP, alarms.LEDGER_MISMATCH, "lost_contact")


class UnknownGatewayError(LookupError):
    """``apply_*`` was handed a gateway id the database does not know (a bridge bug)."""


@dataclass
class Uplink:
    """One opened envelope: its collector, sequence number and messages (``body["m"]``)."""

    gateway_id: str
    seq: int
    messages: list[Any]


@dataclass
class ApplyResult:
    """What ``apply_*`` did. ``acks`` lists, per gateway, every sequence to acknowledge (applied
    now or already before). ``notices`` are plain dicts for the north topics, in order:
    ``{"type": "reading"|"state"|"event"|"alarm"|"sale"|"refund"|"reversal"|"transfer_in"|
    "settlement"|"gateway", ...}``."""

    applied: list[tuple[str, int]] = field(default_factory=list)
    duplicates: list[tuple[str, int]] = field(default_factory=list)
    quarantined: int = 0
    readings: int = 0
    notices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def acks(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = defaultdict(list)
        for gw, seq in self.applied + self.duplicates:
            out[gw].append(seq)
        return dict(out)


class Batch:
    """What the handlers of one gateway's messages share within a batch."""

    def __init__(self, session: Session, gateway_id: str, now: int, result: ApplyResult) -> None:
        self.s = session
        self.now = now
        self.result = result
        gateway = session.get(Gateway, gateway_id, with_for_update=True)
        if gateway is None:
            raise UnknownGatewayError(f"collector {gateway_id!r} is not in the database")
        self.gw = gateway
        self.meters: dict[str, Meter] = {}
        self.reading_rows: list[dict[str, Any]] = []
        self.seen_readings: set[int] = set()
        self.seen_events: set[int] = set()
        self.active: dict[tuple[str, str], Alarm] = {}
        self.checks: dict[str, dict[str, Any | None]] = {}
        self.unverified: dict[str, list[Command]] = defaultdict(list)

    def fresh(self, ups: list[Uplink]) -> list[Uplink]:
        seqs = [u.seq for u in ups]
        known = set(
            self.s.scalars(
                select(InboxEntry.seq).where(
                    InboxEntry.gateway_id == self.gw.id, InboxEntry.seq.in_(seqs)
                )
            )
        )
        fresh: list[Uplink] = []
        for up in ups:
            if up.seq in known:
                self.result.duplicates.append((self.gw.id, up.seq))
                continue
            known.add(up.seq)
            fresh.append(up)
        if fresh:
            self.s.execute(
                insert(InboxEntry),
                [
                    {
                        "gateway_id": self.gw.id,
                        "seq": u.seq,
                        "received_ts": self.now,
                        "messages": len(u.messages) if isinstance(u.messages, list) else 0,
                    }
                    for u in fresh
                ],
            )
        return fresh

    def preload(self, msgs: list[dict[str, Any]]) -> None:
        meter_ids = {m["meter"] for m in msgs if isinstance(m.get("meter"), str)}
        if meter_ids:
            rows = self.s.scalars(
                select(Meter).where(Meter.id.in_(sorted(meter_ids))).with_for_update()
            )
            self.meters = {m.id: m for m in rows}
            for alarm in self.s.scalars(
                select(Alarm).where(
                    Alarm.active.is_(True),
                    Alarm.meter_id.in_(list(self.meters)),
                    Alarm.kind.in_(CHECK_KINDS),
                )
            ):
                self.active[(alarm.meter_id or "", alarm.kind)] = alarm
            for command in self.s.scalars(
                select(Command).where(
                    Command.meter_id.in_(list(self.meters)), Command.status == lifecycle.APPLIED
                )
            ):
                assert command.meter_id is not None
                self.unverified[command.meter_id].append(command)
        reading_ids = [m["id"] for m in msgs if m.get("t") == "reading"]
        if reading_ids:
            self.seen_readings = set(
                self.s.scalars(
                    select(Reading.reading_id).where(
                        Reading.gateway_id == self.gw.id, Reading.reading_id.in_(reading_ids)
                    )
                )
            )
        event_ids = [m["id"] for m in msgs if m.get("t") == "event"]
        if event_ids:
            self.seen_events = set(
                self.s.scalars(
                    select(Event.event_id).where(
                        Event.gateway_id == self.gw.id, Event.event_id.in_(event_ids)
                    )
                )
            )

    def quarantine(self, seq: int, msg: Any, reason: str) -> None:
        self.result.quarantined += 1
        self.s.add(
            Quarantine(
                gateway_id=self.gw.id,
                seq=seq,
                message=msg if isinstance(msg, dict) else {"raw": repr(msg)[:2000]},
                reason=reason[:500],
                received_ts=self.now,
            )
        )

    def meter(self, msg: dict[str, Any]) -> Meter:
        """The message's meter, one of this gateway's; ``QuarantineError`` otherwise."""
        meter = self.meters.get(msg["meter"])
        if meter is None:
            raise QuarantineError(f"unknown meter {msg['meter']!r}")
        if meter.gateway_id != self.gw.id:
            raise QuarantineError(
                f"meter {meter.id} belongs to collector {meter.gateway_id}, not {self.gw.id}"
            )
        return meter
