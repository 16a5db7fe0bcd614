"""A virtual collector: the sync protocol of a collector (docs/protocol.md) without buses, store or
agent, so thousands fit in one process and load the cloud as thousands of real ones would.

What it keeps of a real collector, each with the real code of ``shared/codec``:

- its own key and envelope sequence numbers; every envelope is sealed once
  (``envelope.seal_encoded``) and resent byte for byte;
- message ids that increase per collector (readings, results), so the cloud can dedupe them;
- up to ``window`` envelopes waiting for an ack; a resend after ``ack_timeout_s``, on every
  reconnect, and at once for an older envelope when a later one is acked (fast retransmit);
- a downlink replay window (``envelope.ReplayWindow``) and an inbox of command results, so a
  command resent by the cloud is answered again and never applied twice;
- per meter, running totals that continue from reading to reading (``charges_micro_yuan`` =
  previous + ``charge_micro_yuan``) and credits applied in purchase order, so the cloud's ledger
  mirror and cross-check see what they would see from a real collector.

What it leaves out: rating (a fixed price per Wh), relays, alarms and every other engine rule.
Every reading is ``report_s`` after the previous one, 32 meters per envelope by default.
Not thread-safe: one thread (the load process's loop) owns every collector.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from shared.codec import envelope, messages
from shared.codec.errors import EnvelopeError, MalformedError

PRICE_MICRO_YUAN_PER_WH = 1_000  # 1 yuan per kWh
POWER_W = 3_000
AGENT = "gridvend-bench-vc/1"


@dataclass
class MeterTotals:
    """The running totals a collector reports for one meter."""

    energy_wh: int = 1_000_000
    credits_micro_yuan: int = 0
    refunds_micro_yuan: int = 0
    charges_micro_yuan: int = 0
    last_purchase_no: int = 0

    @property
    def balance_micro_yuan(self) -> int:
        return self.credits_micro_yuan - self.refunds_micro_yuan - self.charges_micro_yuan


@dataclass
class Inflight:
    """An envelope sealed and sent, waiting for the cloud's ack."""

    data: bytes
    first_sent: float
    last_sent: float
    readings: int


@dataclass
class Counters:
    """What a collector did, for the bench's checks."""

    readings: int = 0  # generated and queued
    readings_acked: int = 0
    envelopes: int = 0
    resent: int = 0
    fast_resent: int = 0
    acks: int = 0
    commands: int = 0
    duplicate_commands: int = 0
    rejected_down: int = 0
    latencies_s: list[float] = field(default_factory=list)  # publish -> ack, per envelope


class VirtualCollector:
    """One collector's sync protocol state (see the module docstring)."""

    def __init__(
        self,
        site: str,
        gateway: str,
        key: bytes,
        meters: list[str],
        *,
        report_s: float = 30.0,
        ack_timeout_s: float = 30.0,
        window: int = 16,
    ) -> None:
        self.site = site
        self.gateway = gateway
        self.ring = envelope.Keyring({1: key}, current=1)
        self.meters = {m: MeterTotals() for m in meters}
        self.report_s = report_s
        self.ack_timeout_s = ack_timeout_s
        self.window = window
        self.topic_up = f"gridvend/v1/{site}/{gateway}/up"
        self.topic_status = f"gridvend/v1/{site}/{gateway}/status"
        self.next_report = 0.0
        self.last_report_ts = 0
        self.counters = Counters()
        self._seq = 0
        self._msg_id = 0
        self._down = envelope.ReplayWindow()
        self._inbox: dict[str, dict[str, Any]] = {}  # command id -> the result sent
        self._queued: list[dict[str, Any]] = []  # results waiting for the next envelope
        self.inflight: dict[int, Inflight] = {}

    # --- uplink ----------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _number(self, msg: dict[str, Any]) -> dict[str, Any]:
        self._msg_id += 1
        msg["id"] = self._msg_id
        return msg

    def _seal(self, msgs: list[dict[str, Any]], now: float, readings: int) -> tuple[int, bytes]:
        seq = self._next_seq()
        plaintext = json.dumps({"v": 1, "m": msgs}, separators=(",", ":")).encode()
        data = envelope.seal_encoded(
            self.ring, envelope.UP, self.gateway, seq, int(now * 1000), plaintext
        )
        return seq, data

    def hello(self, now: float) -> bytes:
        """A ``hello`` envelope (sent on every connect, not stored, may be lost)."""
        meters = [
            {"id": m, "model": "acrel-ddsy1352", "bus": "bus1", "address": i + 1}
            for i, m in enumerate(self.meters)
        ]
        _seq, data = self._seal([messages.hello(AGENT, "bench", meters)], now, 0)
        return data

    def can_send(self) -> bool:
        return len(self.inflight) < self.window

    def report(self, now: float) -> bytes | None:
        """An envelope with one reading per meter (and queued results), or None when the
        window is full (the readings wait, as in a real outbox)."""
        if not self.can_send():
            return None
        ts = max(int(now), self.last_report_ts + 1)
        self.last_report_ts = ts
        msgs = list(self._queued)
        self._queued.clear()
        for meter, totals in self.meters.items():
            energy = POWER_W * int(self.report_s) // 3600
            totals.energy_wh += energy
            charge = energy * PRICE_MICRO_YUAN_PER_WH
            totals.charges_micro_yuan += charge
            msgs.append(self._number(self._reading(meter, totals, ts, charge)))
        count = len(self.meters)
        self.counters.readings += count
        return self._send(msgs, now, count)

    @staticmethod
    def _reading(meter: str, t: MeterTotals, ts: int, charge: int) -> dict[str, Any]:
        return {
            "t": "reading",
            "meter": meter,
            "ts": ts,
            "energy_wh": t.energy_wh,
            "power_w": POWER_W,
            "relay": "closed",
            "band_energy_wh": {
                "sharp": 0,
                "peak": t.energy_wh // 3,
                "flat": t.energy_wh // 3,
                "valley": t.energy_wh - 2 * (t.energy_wh // 3),
            },
            "voltages_dv": [2201, 2198, 2203],
            "currents_ma": [4540, 4510, 4560],
            "charge_micro_yuan": charge,
            "balance_micro_yuan": t.balance_micro_yuan,
            "credits_micro_yuan": t.credits_micro_yuan,
            "refunds_micro_yuan": t.refunds_micro_yuan,
            "charges_micro_yuan": t.charges_micro_yuan,
        }

    def flush(self, now: float) -> bytes | None:
        """Queued results in an envelope of their own (a real collector sends them at once)."""
        if not self._queued or not self.can_send():
            return None
        msgs = list(self._queued)
        self._queued.clear()
        return self._send(msgs, now, 0)

    def _send(self, msgs: list[dict[str, Any]], now: float, readings: int) -> bytes:
        seq, data = self._seal(msgs, now, readings)
        self.inflight[seq] = Inflight(data, now, now, readings)
        self.counters.envelopes += 1
        return data

    def due_resends(self, now: float) -> list[bytes]:
        """Envelopes that waited ``ack_timeout_s`` for an ack: sent again, unchanged."""
        out: list[bytes] = []
        for item in self.inflight.values():
            if now - item.last_sent >= self.ack_timeout_s:
                item.last_sent = now
                out.append(item.data)
                self.counters.resent += 1
        return out

    def all_inflight(self, now: float) -> list[bytes]:
        """Everything not acked, oldest first (on every reconnect)."""
        out = []
        for _seq, item in sorted(self.inflight.items()):
            item.last_sent = now
            out.append(item.data)
        self.counters.resent += len(out)
        return out

    # --- downlink --------------------------------------------------------------------------

    def on_down(self, data: bytes, now: float) -> list[bytes]:
        """Open a downlink envelope: apply acks, answer commands. Returns envelopes to publish
        (fast retransmits, results)."""
        try:
            opened = envelope.open_sealed(self.ring, data, envelope.DOWN, self.gateway)
            seq = opened.header.seq
            self._down.check(seq)
            msgs = messages.parse_body(opened.body)
        except EnvelopeError:
            self.counters.rejected_down += 1
            return []
        self._down.accept(seq)
        out: list[bytes] = []
        acks: list[int] = []
        for msg in msgs:
            try:
                messages.validate_down(msg)
            except MalformedError:
                self.counters.rejected_down += 1
                continue
            if msg["t"] == "ack":
                acks.extend(msg["seqs"])
            else:
                self._command(msg)
        if acks:
            out.extend(self._acked(acks, now))
        sent = self.flush(now)
        if sent is not None:
            out.append(sent)
        return out

    def _acked(self, seqs: list[int], now: float) -> list[bytes]:
        newest_sent: float | None = None
        newest_seq = 0
        for seq in seqs:
            item = self.inflight.pop(seq, None)
            if item is None:
                continue
            self.counters.acks += 1
            self.counters.readings_acked += item.readings
            self.counters.latencies_s.append(now - item.first_sent)
            if newest_sent is None or item.last_sent > newest_sent:
                newest_sent = item.last_sent
            newest_seq = max(newest_seq, seq)
        out: list[bytes] = []
        if newest_sent is None:
            return out
        for seq, item in sorted(self.inflight.items()):
            if seq < newest_seq and item.last_sent <= newest_sent:
                item.last_sent = now
                out.append(item.data)
                self.counters.fast_resent += 1
        return out

    def _command(self, msg: dict[str, Any]) -> None:
        self.counters.commands += 1
        cmd_id = str(msg["id"])
        if cmd_id in self._inbox:
            self.counters.duplicate_commands += 1
            self._queued.append(self._number(dict(self._inbox[cmd_id], id=0)))
            return
        meter = msg["meter"]
        op = msg["op"]
        args = msg["args"]
        totals = self.meters.get(meter) if meter is not None else None
        status, reason, purchase_no = "applied", None, None
        if meter is not None and totals is None:
            status, reason = "rejected", f"no meter {meter}"
        elif op == "credit" and totals is not None:
            purchase_no = args["purchase_no"]
            if purchase_no != totals.last_purchase_no + 1:
                status, reason = "rejected", "out of order (the bench's collectors hold no gap)"
            else:
                totals.last_purchase_no = purchase_no
                totals.credits_micro_yuan += args["amount_micro_yuan"]
        elif op in ("refund", "reversal", "transfer_in", "close_account", "config"):
            status, reason = "rejected", f"{op} is not simulated by the bench's collectors"
        balance = totals.balance_micro_yuan if totals is not None else None
        result = messages.result(msg["id"], meter, op, status, reason, balance, purchase_no)
        self._inbox[cmd_id] = result
        self._queued.append(self._number(dict(result)))

    # --- checks ----------------------------------------------------------------------------

    def totals(self) -> dict[str, Any]:
        """What the cloud should hold for this collector once everything is acked."""
        return {
            "gateway": self.gateway,
            "readings": self.counters.readings,
            "readings_acked": self.counters.readings_acked,
            "inflight": len(self.inflight),
            "queued": len(self._queued),
            "meters": {
                m: [t.credits_micro_yuan, t.refunds_micro_yuan, t.charges_micro_yuan]
                for m, t in self.meters.items()
            },
        }
