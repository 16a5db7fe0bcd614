"""Test support for the cloud: seeding a park, and ``FakeEdge``, a small stand-in for a
collector at the message level (docs/protocol.md): it answers ``cmd`` messages with ``result``
messages by the wallet rules of the engine (credits in purchase order, refunds and reversals
only if the balance stays ≥ 0, a close settles to zero) and reports readings with charges and
running totals. It is passed to the code under test as data, never patched in.

The real edge (engine + agent) is exercised end to end by the bridge's tests; here the cloud's
own logic is tested against the protocol contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from cloud.audit import Actor
from cloud.control import dispatch
from cloud.db import Database
from cloud.park import inventory
from cloud.uplink import ingest

ACTOR = Actor("test")
KEY_HEX = "11" * 32
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass
class Park:
    site: str = "studio"
    gateways: tuple[str, ...] = ("gw-1", "gw-2")
    meters: tuple[str, ...] = ("m-101", "m-102", "m-103", "m-201", "m-202", "m-203")
    plain: str = "m-p1"


def seed_park(s: Session) -> Park:
    park = Park()
    inventory.upsert_site(s, park.site, "Film studio park")
    for b, fl, unit in (("A", "1", "A-101"), ("A", "1", "A-102"), ("B", "2", "B-201")):
        inventory.upsert_unit(s, park.site, b, fl, unit)
    for gw in park.gateways:
        inventory.upsert_gateway(s, gw, park.site, KEY_HEX)
    units = {"m-101": "A-101", "m-102": "A-101", "m-103": "A-102", "m-201": "B-201"}
    for meter in park.meters:
        gw = "gw-1" if meter.startswith("m-1") else "gw-2"
        inventory.upsert_meter(
            s, meter, gw, "bus1", meter[-3:], "acrel-dtsy1352", unit_no=units.get(meter)
        )
    inventory.upsert_meter(s, park.plain, "gw-1", "bus2", "1", "acrel-adl400", prepaid=False)
    return park


@dataclass
class MeterWallet:
    account: str = "not_opened"
    balance: int = 0
    credits: int = 0
    refunds: int = 0
    charges: int = 0
    last_purchase_no: int = 0
    purchases: dict[int, list[Any]] = field(default_factory=dict)  # n -> [amount, status, rev]
    held: dict[int, dict[str, Any]] = field(default_factory=dict)  # n -> the cmd
    energy_wh: int = 0
    mode: str = "prepaid"


class FakeEdge:
    """One collector's side of the protocol, for tests (see the module docstring)."""

    def __init__(self, gateway_id: str) -> None:
        self.gateway_id = gateway_id
        self.wallets: dict[str, MeterWallet] = {}
        self.answers: dict[int, list[dict[str, Any]]] = {}
        self.seq = 0
        self.reading_id = 0
        self.event_id = 0
        self.applied_cmds: list[dict[str, Any]] = []

    def wallet(self, meter: str) -> MeterWallet:
        return self.wallets.setdefault(meter, MeterWallet())

    def _result(self, cmd: dict[str, Any], status: str, reason: str | None) -> dict[str, Any]:
        w = self.wallet(cmd["meter"]) if cmd["meter"] else None
        return {
            "t": "result",
            "cmd": cmd["id"],
            "meter": cmd["meter"],
            "op": cmd["op"],
            "status": status,
            "reason": reason,
            "balance_micro_yuan": w.balance if w else None,
            "purchase_no": cmd["args"].get("purchase_no"),
        }

    def _credit(self, cmd: dict[str, Any], w: MeterWallet, n: int, amount: int) -> list[Any]:
        if w.account != "opened":
            w.purchases[n] = [amount, "rejected", False]
            w.last_purchase_no = n
            return [self._result(cmd, "rejected", "the account is not opened")]
        w.balance += amount
        w.credits += amount
        w.purchases[n] = [amount, "applied", False]
        w.last_purchase_no = n
        return [self._result(cmd, "applied", None)]

    def handle(self, cmd: dict[str, Any]) -> list[dict[str, Any]]:
        """The result message(s) for one command; a command id seen before gets the stored
        answer again."""
        if cmd["id"] in self.answers:
            return self.answers[cmd["id"]]
        op = cmd["op"]
        w = self.wallet(cmd["meter"]) if cmd["meter"] else MeterWallet()
        handler = {
            "credit": self._credit_cmd,
            "refund": self._money_back,
            "reversal": self._money_back,
            "transfer_in": self._transfer_in,
            "open_account": self._open,
            "close_account": self._close,
            "mode": self._mode,
        }.get(op, self._applied)
        out = handler(cmd, w)
        self.applied_cmds.append(cmd)
        if not (op == "credit" and cmd["args"]["purchase_no"] in w.held):
            self.answers[cmd["id"]] = out
        return out

    def _credit_cmd(self, cmd: dict[str, Any], w: MeterWallet) -> list[dict[str, Any]]:
        n = cmd["args"]["purchase_no"]
        if n <= w.last_purchase_no:
            return [self._result(cmd, "duplicate", f"purchase {n} was already handled")]
        if n > w.last_purchase_no + 1:
            w.held[n] = cmd
            return [
                self._result(cmd, "held", f"waiting for purchase {w.last_purchase_no + 1}"),
                {
                    "t": "need_purchase",
                    "meter": cmd["meter"],
                    "purchase_no": w.last_purchase_no + 1,
                },
            ]
        out = self._credit(cmd, w, n, cmd["args"]["amount_micro_yuan"])
        while w.last_purchase_no + 1 in w.held:  # the gap is filled: apply held ones
            held_cmd = w.held.pop(w.last_purchase_no + 1)
            answer = self._credit(
                held_cmd, w, held_cmd["args"]["purchase_no"], held_cmd["args"]["amount_micro_yuan"]
            )
            self.answers[held_cmd["id"]] = answer
            out.extend(answer)
        return out

    def _money_back(self, cmd: dict[str, Any], w: MeterWallet) -> list[dict[str, Any]]:
        args = cmd["args"]
        if cmd["op"] == "refund":
            amount, rec = args["amount_micro_yuan"], None
        else:
            rec = w.purchases.get(args["purchase_no"])
            amount = rec[0] if rec and rec[1] == "applied" and not rec[2] else None
        if w.account != "opened":
            return [self._result(cmd, "rejected", "the account is not opened")]
        if amount is None:
            return [self._result(cmd, "rejected", "nothing to reverse")]
        if w.balance - amount < 0:
            return [self._result(cmd, "rejected", f"balance {w.balance} too low")]
        w.balance -= amount
        w.refunds += amount
        if rec is not None:
            rec[2] = True
        return [self._result(cmd, "applied", None)]

    def _transfer_in(self, cmd: dict[str, Any], w: MeterWallet) -> list[dict[str, Any]]:
        w.balance += cmd["args"]["amount_micro_yuan"]
        w.credits += cmd["args"]["amount_micro_yuan"]
        return [self._result(cmd, "applied", None)]

    def _open(self, cmd: dict[str, Any], w: MeterWallet) -> list[dict[str, Any]]:
        w.account = "opened"
        return [self._result(cmd, "applied", None)]

    def _close(self, cmd: dict[str, Any], w: MeterWallet) -> list[dict[str, Any]]:
        settled = w.balance
        if w.balance > 0:
            w.refunds += w.balance
        elif w.balance < 0:
            w.credits += -w.balance
        w.balance = 0
        w.account = "closed"
        w.mode = "forced_off"
        return [{**self._result(cmd, "applied", None), "settled_balance_micro_yuan": settled}]

    def _mode(self, cmd: dict[str, Any], w: MeterWallet) -> list[dict[str, Any]]:
        w.mode = cmd["args"]["mode"]
        return [self._result(cmd, "applied", None)]

    def _applied(self, cmd: dict[str, Any], w: MeterWallet) -> list[dict[str, Any]]:
        return [self._result(cmd, "applied", None)]

    def reading(
        self,
        meter: str,
        wh: int,
        price_micro_yuan_per_kwh: int = 1_000_000,
        ts: int = T0,
        relay: str | None = "closed",
    ) -> dict[str, Any]:
        """Consume ``wh`` (charge = wh × price / 1000, exact for the prices tests use) and
        report it."""
        w = self.wallet(meter)
        charge = wh * price_micro_yuan_per_kwh // 1000
        w.energy_wh += wh
        w.charges += charge
        w.balance -= charge
        self.reading_id += 1
        return {
            "t": "reading",
            "id": self.reading_id,
            "meter": meter,
            "ts": ts,
            "energy_wh": w.energy_wh,
            "power_w": 1000,
            "relay": relay,
            "band_energy_wh": None,
            "voltages_dv": [2200, 2200, 2200],
            "currents_ma": None,
            "charge_micro_yuan": charge,
            "balance_micro_yuan": w.balance,
            "credits_micro_yuan": w.credits,
            "refunds_micro_yuan": w.refunds,
            "charges_micro_yuan": w.charges,
        }

    def event(
        self, meter: str | None, kind: str, ts: int = T0, detail: Any = None
    ) -> dict[str, Any]:
        self.event_id += 1
        return {
            "t": "event",
            "id": self.event_id,
            "meter": meter,
            "ts": ts,
            "kind": kind,
            "detail": detail,
        }

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


def send(
    db: Database,
    edge: FakeEdge,
    messages: list[dict[str, Any]],
    now: int = T0,
    seq: int | None = None,
) -> ingest.ApplyResult:
    """Deliver ``messages`` from ``edge`` as one envelope and commit."""
    with db.session() as s:
        return ingest.apply_uplink(
            s, edge.gateway_id, seq if seq is not None else edge.next_seq(), messages, now=now
        )


def sync(
    db: Database,
    edges: dict[str, FakeEdge],
    now: int = T0,
    rounds: int = 10,
    drop_results: bool = False,
) -> int:
    """Run the command loop until nothing is left to send: commands out, results back.
    Returns how many commands were delivered."""
    delivered = 0
    for _ in range(rounds):
        moved = 0
        for gw, edge in edges.items():
            with db.session() as s:
                msgs = dispatch.next_to_send(s, gw, now=now)
                dispatch.mark_sent(s, [m["id"] for m in msgs], now=now)
            if not msgs:
                continue
            moved += len(msgs)
            answers: list[dict[str, Any]] = []
            for m in msgs:
                answers.extend(edge.handle(m))
            if not drop_results:
                send(db, edge, answers, now=now)
        delivered += moved
        if moved == 0:
            break
    return delivered
