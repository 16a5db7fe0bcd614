"""A long random scenario: sales, refunds, reversals and consumption across two collectors,
with results lost (and the commands resent), envelopes delivered twice and out of order. At the
end every meter's mirror equals the sum of its rows and the edge's own ledger, to the
micro-yuan, and no ledger alarm is left active."""

from __future__ import annotations

import random

import pytest

from cloud.control import dispatch
from cloud.errors import ServiceError
from cloud.models import Alarm, Command, Meter, Reading, Refund, Reversal, Sale
from cloud.money import accounts, ledger, refunds, reversals, sales
from cloud.uplink import ingest
from tests.cloud.support import ACTOR, T0, FakeEdge

Y = 1_000_000
METERS = {"m-101": "gw-1", "m-102": "gw-1", "m-201": "gw-2", "m-202": "gw-2"}


class Wire:
    """Uplink envelopes in flight: may be delivered late, out of order, or twice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.queue: list[tuple[str, int, list]] = []

    def put(self, edge: FakeEdge, msgs: list) -> None:
        if msgs:
            self.queue.append((edge.gateway_id, edge.next_seq(), msgs))

    def deliver(self, db, now: int, everything: bool = False) -> None:
        self.rng.shuffle(self.queue)
        keep = []
        for item in self.queue:
            if not everything and self.rng.random() < 0.3:
                keep.append(item)  # late
                continue
            copies = 2 if self.rng.random() < 0.2 else 1  # QoS 1 duplicate
            for _ in range(copies):
                with db.session() as s:
                    ingest.apply_uplink(s, item[0], item[1], item[2], now=now)
        self.queue = keep


def _send_commands(db, edges, wire, rng, now, lose=0.25):
    for gw, edge in edges.items():
        with db.session() as s:
            msgs = dispatch.next_to_send(s, gw, now=now)
            dispatch.mark_sent(s, [m["id"] for m in msgs], now=now)
        for m in msgs:
            answers = edge.handle(m)
            if rng.random() >= lose:
                wire.put(edge, answers)


@pytest.mark.parametrize("seed", [1, 2])
def test_random_scenario_converges_to_the_edge_ledger(db, park, seed):
    rng = random.Random(seed)
    edges = {"gw-1": FakeEdge("gw-1"), "gw-2": FakeEdge("gw-2")}
    wire = Wire(rng)
    now = T0
    with db.session() as s:
        accounts.open_account(
            s,
            {"name": "A"},
            [{"meter": "m-101", "transfer_in_micro_yuan": 7 * Y}, "m-102"],
            ACTOR,
            now=now,
        )
        accounts.open_account(s, {"name": "B"}, ["m-201", "m-202"], ACTOR, now=now)
    for step in range(120):
        now += rng.choice((1, 5, 40))
        action = rng.random()
        meter = rng.choice(list(METERS))
        try:
            with db.session() as s:
                if action < 0.3:
                    sales.sell(
                        s,
                        meter,
                        rng.randint(1, 80) * Y,
                        "cash",
                        ACTOR,
                        idempotency_key=f"{seed}-{step}",
                        now=now,
                    )
                elif action < 0.4:
                    refunds.refund(s, meter, rng.randint(1, 30) * Y, ACTOR, now=now)
                elif action < 0.45:
                    applied = s.query(Sale).filter(Sale.status == "applied").all()
                    if applied:
                        reversals.reverse(s, rng.choice(applied).id, ACTOR, now=now)
        except ServiceError:
            pass  # refused by the cloud (balance, cap…): nothing was created
        if 0.45 <= action < 0.8:
            edge = edges[METERS[meter]]
            wire.put(
                edge,
                [
                    edge.reading(
                        meter,
                        rng.randint(0, 20_000),
                        rng.choice((1_000_000, 1_230_000, 800_000)),
                        ts=now,
                    )
                ],
            )
        _send_commands(db, edges, wire, rng, now)
        wire.deliver(db, now)
    # Let everything arrive: deliver, resend what has no result, until the queue is empty.
    for _ in range(20):
        now += 31
        _send_commands(db, edges, wire, rng, now, lose=0.0)
        wire.deliver(db, now, everything=True)
    for meter, gw in METERS.items():  # a last reading each, after every result
        wire.put(edges[gw], [edges[gw].reading(meter, 0, ts=now)])
    wire.deliver(db, now, everything=True)
    with db.session() as s:
        assert dispatch.next_to_send(s, "gw-1", now=now + 100) == []
        assert s.query(Sale).filter(Sale.status == "pending").count() == 0
        for meter_id, gw in METERS.items():
            wallet = edges[gw].wallet(meter_id)
            totals = ledger.verify(s, meter_id)
            m = s.get(Meter, meter_id)
            assert (
                m.credits_micro_yuan,
                m.refunds_micro_yuan,
                m.charges_micro_yuan,
                m.balance_micro_yuan,
            ) == (wallet.credits, wallet.refunds, wallet.charges, wallet.balance), meter_id
            assert totals.balance_micro_yuan == wallet.balance
        kinds = [a.kind for a in s.query(Alarm).filter(Alarm.active.is_(True))]
        assert "charge_gap" not in kinds, kinds
        assert "ledger_mismatch" not in kinds, kinds
        # The scenario really exercised what it claims to.
        assert s.query(Sale).count() > 10
        assert s.query(Command).filter(Command.send_count > 1).count() > 0  # resent
        assert s.query(Refund).filter(Refund.status == "applied").count() > 0
        assert s.query(Reversal).count() > 0
        assert s.query(Reading).count() > 20
