"""The meters' uplink messages for ``cloud.uplink.ingest``: ``reading`` (the mirror takes the
charge, the newest reading of a meter is cross-checked), ``state``, ``event`` (alarms), ``result``
(cloud/uplink/results.py) and ``need_purchase``. Each handler applies one validated message to
the batch (cloud/uplink/batch.py) or raises ``QuarantineError`` saying why it cannot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from cloud.control import lifecycle
from cloud.errors import ResultError
from cloud.models import Command, Event, Meter, Sale
from cloud.money import crosscheck, ledger
from cloud.monitoring import alarms
from cloud.uplink import results
from cloud.uplink.batch import Batch, MeterMirror
from cloud.uplink.rows import reading_row

# An applied mode command is verified by a reading showing the relay it implies.
MODE_RELAY = {"forced_off": "open", "keep_power": "closed"}


class MeterMessages:
    """Handlers of the meters' messages over one :class:`~cloud.uplink.batch.Batch`."""

    def __init__(self, batch: Batch) -> None:
        self.b = batch

    def reading(self, msg: dict[str, Any]) -> None:
        meter = self.b.reading_meter(msg)
        rid = msg["id"]
        if rid in self.b.seen_readings:
            return  # already counted (resent under a new envelope)
        self.b.seen_readings.add(rid)
        charge = msg["charge_micro_yuan"]
        self.b.reading_rows.append(reading_row(msg, self.b.gw.id, meter.id, self.b.now))
        ledger.charge(meter, charge)
        meter.last_seen_ts = max(meter.last_seen_ts or 0, msg["ts"])
        if meter.lost_contact:
            meter.lost_contact = False
            self.b.checks.setdefault(meter.id, {})["lost_contact"] = None
        newest = meter.last_reading_id is None or rid > meter.last_reading_id
        if not newest:
            # Late (out of order): it may fill a gap in the charges; recheck those only.
            gap = crosscheck.charge_gap(meter, meter.edge_charges_micro_yuan, rid)
            self.b.checks.setdefault(meter.id, {})[alarms.CHARGE_GAP] = gap
            self.b.result.notices.append({"type": "reading", "meter": meter.id, "reading": msg})
            return
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
        checks = self.b.checks.setdefault(meter.id, {})
        checks[alarms.CHARGE_GAP] = crosscheck.charge_gap(meter, msg["charges_micro_yuan"], rid)
        if crosscheck.predates_money(meter, rid):
            # Sent before a result the mirror already counts: its credits and refunds cannot
            # show it; neither raise nor clear on it (a later reading decides).
            checks.pop(alarms.LEDGER_MISMATCH, None)
        else:
            checks[alarms.LEDGER_MISMATCH] = crosscheck.ledger_mismatch(meter, msg, rid)
        self._verify(meter, msg["relay"])
        self.b.result.notices.append({"type": "reading", "meter": meter.id, "reading": msg})

    def _verify(self, meter: Meter | MeterMirror, relay: str | None) -> None:
        keep: list[Command] = []
        for command in self.b.unverified.get(meter.id, []):
            want = MODE_RELAY.get(command.args.get("mode", "")) if command.op == "mode" else None
            if want is not None and relay != want:
                keep.append(command)
                continue
            lifecycle.transition(command, "verified")
            command.verified_ts = self.b.now
        self.b.unverified[meter.id] = keep

    def settle_checks(self) -> None:
        """Raise or clear the cloud-side alarms from each meter's final check of the batch."""
        for meter_id, checks in self.b.checks.items():
            for kind, detail in checks.items():
                active = self.b.active.get((meter_id, kind))
                if detail is None and active is not None:
                    alarms.clear_alarms(
                        self.b.s, (kind,), meter_id=meter_id, by="reading", now=self.b.now
                    )
                    del self.b.active[(meter_id, kind)]
                    self.b.result.notices.append(alarms.notice(active, "cleared"))
                elif detail is not None:
                    alarm, new = alarms.raise_alarm(
                        self.b.s,
                        kind,
                        meter_id=meter_id,
                        gateway_id=self.b.gw.id,
                        detail=detail,
                        now=self.b.now,
                    )
                    self.b.active[(meter_id, kind)] = alarm
                    if new:
                        self.b.s.flush()
                        self.b.result.notices.append(alarms.notice(alarm, "raised"))

    def state(self, msg: dict[str, Any]) -> None:
        meter = self.b.meter(msg)
        if msg["state"] == "lost_contact":
            meter.lost_contact = True
        else:
            meter.display_state = msg["state"]
        if msg["relay"] is not None:
            meter.relay = msg["relay"]
        meter.mode = msg["mode"]
        meter.edge_balance_micro_yuan = msg["balance_micro_yuan"]
        self.b.result.notices.append(
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

    def event(self, msg: dict[str, Any]) -> None:
        meter = self.b.meter(msg) if msg["meter"] is not None else None
        if msg["id"] in self.b.seen_events:
            return
        self.b.seen_events.add(msg["id"])
        detail = msg["detail"] if isinstance(msg["detail"], dict) else {"value": msg["detail"]}
        self.b.s.add(
            Event(
                gateway_id=self.b.gw.id,
                event_id=msg["id"],
                meter_id=meter.id if meter else None,
                ts=msg["ts"],
                kind=msg["kind"],
                detail=detail,
                received_ts=self.b.now,
            )
        )
        changed = alarms.apply_event(
            self.b.s,
            msg["kind"],
            meter=meter,
            gateway_id=self.b.gw.id,
            detail=msg["detail"],
            event_ts=msg["ts"],
            now=self.b.now,
        )
        self.b.result.notices.append({"type": "event", "meter": msg["meter"], "event": msg})
        for alarm, what in changed:
            # Keep the batch's view of active alarms current for the reading checks after it.
            if alarm.meter_id is not None:
                key = (alarm.meter_id, alarm.kind)
                if what == "raised":
                    self.b.active[key] = alarm
                else:
                    self.b.active.pop(key, None)
                if alarm.kind == "lost_contact" and what == "raised":
                    self.b.checks.get(alarm.meter_id, {}).pop("lost_contact", None)
            self.b.result.notices.append(alarms.notice(alarm, what))

    def result(self, msg: dict[str, Any]) -> None:
        try:
            notices = results.apply_result(self.b.s, self.b.gw.id, msg, self.b.meters, self.b.now)
        except ResultError as exc:
            alarms.raise_alarm(
                self.b.s,
                alarms.RESULT_CONFLICT,
                gateway_id=self.b.gw.id,
                detail={"result": msg, "problem": str(exc)},
                now=self.b.now,
            )
            raise
        command = self.b.s.get(Command, int(msg["cmd"]))
        if command is not None and command.status == lifecycle.APPLIED and command.meter_id:
            self.b.unverified[command.meter_id].append(command)
        self.b.result.notices.extend(notices)

    def need_purchase(self, msg: dict[str, Any]) -> None:
        meter = self.b.meter(msg)
        sale = self.b.s.scalars(
            select(Sale).where(Sale.meter_id == meter.id, Sale.purchase_no == msg["purchase_no"])
        ).first()
        command = self.b.s.get(Command, sale.command_id) if sale and sale.command_id else None
        if command is not None and command.status in lifecycle.OPEN_STATUSES:
            # Due for sending at once: the collector is waiting for it.
            command.last_sent_ts = None
            return
        alarms.raise_alarm(
            self.b.s,
            alarms.PURCHASE_MISSING,
            meter_id=meter.id,
            gateway_id=self.b.gw.id,
            detail={
                "purchase_no": msg["purchase_no"],
                "sale": sale.id if sale else None,
                "sale_status": sale.status if sale else None,
            },
            now=self.b.now,
        )
