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
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from cloud.control import lifecycle
from cloud.models import (
    Alarm,
    Command,
    Event,
    Gateway,
    InboxEntry,
    Meter,
    Quarantine,
    Reading,
    Sale,
    now_ts,
)
from cloud.money import crosscheck, ledger
from cloud.monitoring import alarms
from cloud.uplink import results
from cloud.uplink.gateway import GatewayMessages
from shared.codec import messages as wire
from shared.codec import readings
from shared.codec.errors import CodecError

CHECK_KINDS = (alarms.CHARGE_GAP, alarms.LEDGER_MISMATCH, "lost_contact")
# An applied mode command is verified by a reading showing the relay it implies.
MODE_RELAY = {"forced_off": "open", "keep_power": "closed"}


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


class _Applier(GatewayMessages):
    """Applies one gateway's envelopes of a batch with a handful of queries."""

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

    # -- setup --------------------------------------------------------------------------------

    def _fresh(self, ups: list[Uplink]) -> list[Uplink]:
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

    def _preload(self, msgs: list[dict[str, Any]]) -> None:
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

    # -- the run ------------------------------------------------------------------------------

    def run(self, ups: list[Uplink]) -> None:
        fresh = self._fresh(ups)
        valid: list[tuple[int, dict[str, Any]]] = []
        for up in fresh:
            self.result.applied.append((self.gw.id, up.seq))
            msgs = up.messages if isinstance(up.messages, list) else [up.messages]
            for msg in msgs:
                try:
                    valid.append((up.seq, wire.validate_up(msg)))
                except (CodecError, ValueError) as exc:
                    self._quarantine(up.seq, msg, str(exc))
        self._preload([m for _, m in valid])
        handlers = {
            "reading": self._reading,
            "state": self._state,
            "event": self._event,
            "result": self._result,
            "need_purchase": self._need_purchase,
            "hb": self._hb,
            "hello": self._hello,
        }
        for seq, msg in valid:
            problem = handlers[msg["t"]](msg)
            if problem is not None:
                self._quarantine(seq, msg, problem)
        if self.reading_rows:
            self.s.execute(insert(Reading), self.reading_rows)
            self.result.readings += len(self.reading_rows)
        self._settle_checks()

    def _quarantine(self, seq: int, msg: Any, reason: str) -> None:
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

    def _meter(self, msg: dict[str, Any]) -> Meter | str:
        meter = self.meters.get(msg["meter"])
        if meter is None:
            return f"unknown meter {msg['meter']!r}"
        if meter.gateway_id != self.gw.id:
            return f"meter {meter.id} belongs to collector {meter.gateway_id}, not {self.gw.id}"
        return meter

    # -- handlers: each returns None, or why the message goes to quarantine -------------------

    def _reading(self, msg: dict[str, Any]) -> str | None:
        meter = self._meter(msg)
        if isinstance(meter, str):
            return meter
        rid = msg["id"]
        if rid in self.seen_readings:
            return None  # already counted (resent under a new envelope)
        self.seen_readings.add(rid)
        charge = msg["charge_micro_yuan"]
        self.reading_rows.append(
            {
                "gateway_id": self.gw.id,
                "reading_id": rid,
                "meter_id": meter.id,
                **readings.stored(msg),
                "received_ts": self.now,
            }
        )
        ledger.charge(meter, charge)
        meter.last_seen_ts = max(meter.last_seen_ts or 0, msg["ts"])
        if meter.lost_contact:
            meter.lost_contact = False
            self.checks.setdefault(meter.id, {})["lost_contact"] = None
        newest = meter.last_reading_id is None or rid > meter.last_reading_id
        if not newest:
            # Late (out of order): it may fill a gap in the charges; recheck those only.
            gap = crosscheck.charge_gap(meter, meter.edge_charges_micro_yuan, rid)
            self.checks.setdefault(meter.id, {})[alarms.CHARGE_GAP] = gap
            self.result.notices.append({"type": "reading", "meter": meter.id, "reading": msg})
            return None
        meter.last_reading_id = rid
        meter.last_reading_ts = msg["ts"]
        meter.energy_wh = msg["energy_wh"]
        meter.power_w = msg["power_w"]
        if msg["relay"] is not None:
            meter.relay = msg["relay"]
        meter.edge_balance_micro_yuan = msg["balance_micro_yuan"]
        meter.edge_credits_micro_yuan = msg["credits_micro_yuan"]
        meter.edge_refunds_micro_yuan = msg["refunds_micro_yuan"]
        meter.edge_charges_micro_yuan = msg["charges_micro_yuan"]
        checks = self.checks.setdefault(meter.id, {})
        checks[alarms.CHARGE_GAP] = crosscheck.charge_gap(meter, msg["charges_micro_yuan"], rid)
        checks[alarms.LEDGER_MISMATCH] = crosscheck.ledger_mismatch(meter, msg, rid)
        self._verify(meter, msg["relay"])
        self.result.notices.append({"type": "reading", "meter": meter.id, "reading": msg})
        return None

    def _verify(self, meter: Meter, relay: str | None) -> None:
        keep: list[Command] = []
        for command in self.unverified.get(meter.id, []):
            want = MODE_RELAY.get(command.args.get("mode", "")) if command.op == "mode" else None
            if want is not None and relay != want:
                keep.append(command)
                continue
            lifecycle.transition(command, "verified")
            command.verified_ts = self.now
        self.unverified[meter.id] = keep

    def _settle_checks(self) -> None:
        """Raise or clear the cloud-side alarms from each meter's final check of the batch."""
        for meter_id, checks in self.checks.items():
            for kind, detail in checks.items():
                active = self.active.get((meter_id, kind))
                if detail is None and active is not None:
                    alarms.clear_alarms(
                        self.s, (kind,), meter_id=meter_id, by="reading", now=self.now
                    )
                    del self.active[(meter_id, kind)]
                    self.result.notices.append(alarms.notice(active, "cleared"))
                elif detail is not None:
                    alarm, new = alarms.raise_alarm(
                        self.s,
                        kind,
                        meter_id=meter_id,
                        gateway_id=self.gw.id,
                        detail=detail,
                        now=self.now,
                    )
                    self.active[(meter_id, kind)] = alarm
                    if new:
                        self.s.flush()
                        self.result.notices.append(alarms.notice(alarm, "raised"))

    def _state(self, msg: dict[str, Any]) -> str | None:
        meter = self._meter(msg)
        if isinstance(meter, str):
            return meter
        if msg["state"] == "lost_contact":
            meter.lost_contact = True
        else:
            meter.display_state = msg["state"]
        if msg["relay"] is not None:
            meter.relay = msg["relay"]
        meter.mode = msg["mode"]
        meter.edge_balance_micro_yuan = msg["balance_micro_yuan"]
        self.result.notices.append(
            {
                "type": "state",
                "meter": meter.id,
                "state": meter.state,
                "relay": meter.relay,
                "mode": meter.mode,
                "balance_micro_yuan": meter.balance_micro_yuan,
                "edge_balance_micro_yuan": msg["balance_micro_yuan"],
                "alarm": msg["alarm"],
            }
        )
        return None

    def _event(self, msg: dict[str, Any]) -> str | None:
        meter: Meter | None = None
        if msg["meter"] is not None:
            found = self._meter(msg)
            if isinstance(found, str):
                return found
            meter = found
        if msg["id"] in self.seen_events:
            return None
        self.seen_events.add(msg["id"])
        detail = msg["detail"] if isinstance(msg["detail"], dict) else {"value": msg["detail"]}
        self.s.add(
            Event(
                gateway_id=self.gw.id,
                event_id=msg["id"],
                meter_id=meter.id if meter else None,
                ts=msg["ts"],
                kind=msg["kind"],
                detail=detail,
                received_ts=self.now,
            )
        )
        changed = alarms.apply_event(
            self.s,
            msg["kind"],
            meter=meter,
            gateway_id=self.gw.id,
            detail=msg["detail"],
            event_ts=msg["ts"],
            now=self.now,
        )
        self.result.notices.append({"type": "event", "meter": msg["meter"], "event": msg})
        for alarm, what in changed:
            # Keep the batch's view of active alarms current for the reading checks after it.
            if alarm.meter_id is not None:
                key = (alarm.meter_id, alarm.kind)
                if what == "raised":
                    self.active[key] = alarm
                else:
                    self.active.pop(key, None)
                if alarm.kind == "lost_contact" and what == "raised":
                    self.checks.get(alarm.meter_id, {}).pop("lost_contact", None)
            self.result.notices.append(alarms.notice(alarm, what))
        return None

    def _result(self, msg: dict[str, Any]) -> str | None:
        try:
            notices = results.apply_result(self.s, self.gw.id, msg, self.meters, self.now)
        except results.ResultError as exc:
            alarms.raise_alarm(
                self.s,
                alarms.RESULT_CONFLICT,
                gateway_id=self.gw.id,
                detail={"result": msg, "problem": str(exc)},
                now=self.now,
            )
            return str(exc)
        command = self.s.get(Command, int(msg["cmd"]))
        if command is not None and command.status == lifecycle.APPLIED and command.meter_id:
            self.unverified[command.meter_id].append(command)
        self.result.notices.extend(notices)
        return None

    def _need_purchase(self, msg: dict[str, Any]) -> str | None:
        meter = self._meter(msg)
        if isinstance(meter, str):
            return meter
        sale = self.s.scalars(
            select(Sale).where(Sale.meter_id == meter.id, Sale.purchase_no == msg["purchase_no"])
        ).first()
        command = self.s.get(Command, sale.command_id) if sale and sale.command_id else None
        if command is not None and command.status in lifecycle.OPEN_STATUSES:
            # Due for sending at once: the collector is waiting for it.
            command.last_sent_ts = None
            return None
        alarms.raise_alarm(
            self.s,
            alarms.PURCHASE_MISSING,
            meter_id=meter.id,
            gateway_id=self.gw.id,
            detail={
                "purchase_no": msg["purchase_no"],
                "sale": sale.id if sale else None,
                "sale_status": sale.status if sale else None,
            },
            now=self.now,
        )
        return None
