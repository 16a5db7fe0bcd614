# ruff: noqa: PLC0415 (imports name the *old* tree's modules, loaded only inside its functions)
"""Make the upgrade test's fixtures with the *previous release's own code* (the turn-1 tree,
commit c7cd0a2: cloud schema 0001_initial_schema, edge store migrations 1-2), and dump them as
SQL text (``tests/deploy/fixtures/previous_cloud.sql`` and ``previous_edge.sql``).

Not run by the tests (it needs the old tree). To make the fixtures again::

    mkdir /tmp/gv-old && git archive c7cd0a2 | tar -x -C /tmp/gv-old
    PYTHONPATH=/tmp/gv-old .venv/bin/python tests/deploy/make_previous_release.py /tmp/gv-old

The cloud database is the old tests' park (tests/cloud/support.py of that release): a site, two
collectors, seven meters, two accounts with transfers-in, sales, a refund, a reversal, commands
answered by the old FakeEdge with results, readings and events ingested, an operator and an
API token, a lost-contact alarm. The edge store is one collector's store written through the
old ``edge.cache.store.Store`` API: meters with engine states, ledger rows, history, an outbox,
an in-flight sealed envelope, an inbox with a result, a held credit, a tariff, kv values.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
Y = 1_000_000


def make_cloud(path: Path) -> None:
    from cloud import accounts, alarms, auth, vending  # the old release's modules
    from cloud.db import Database
    from cloud.models import Sale
    from tests.cloud.support import ACTOR, T0, FakeEdge, seed_park, send, sync

    db = Database(f"sqlite:///{path}")
    db.upgrade()
    with db.session() as s:
        seed_park(s)
        auth.ensure_roles(s)
        auth.create_operator(s, "office", "previous-release-pw", "admin", ACTOR)
        auth.create_token(s, "office", ACTOR, name="integration", token="prev-release-token-0123")
    with db.session() as s:
        accounts.open_account(
            s, {"name": "Tenant A", "phone": "13800000001"},
            [{"meter": "m-101", "transfer_in_micro_yuan": 30 * Y}, "m-102"], ACTOR, now=T0,
        )  # fmt: skip
        accounts.open_account(s, {"name": "Tenant B"}, ["m-201"], ACTOR, now=T0)
    edges = {"gw-1": FakeEdge("gw-1"), "gw-2": FakeEdge("gw-2")}
    sync(db, edges, now=T0 + 1)
    with db.session() as s:
        vending.sell(s, "m-101", 100 * Y, "cash", ACTOR, idempotency_key="prev-1", now=T0 + 10)
        vending.sell(s, "m-201", 55_500_000, "wechat", ACTOR, idempotency_key="prev-2",
                     now=T0 + 11)  # fmt: skip
        vending.sell(s, "m-102", 10 * Y, "cash", ACTOR, idempotency_key="prev-3", now=T0 + 12)
    sync(db, edges, now=T0 + 20)
    with db.session() as s:
        sale = s.query(Sale).filter(Sale.meter_id == "m-102").one()
        vending.reverse(s, sale.id, ACTOR, now=T0 + 25)
    sync(db, edges, now=T0 + 26)
    send(db, edges["gw-1"], [edges["gw-1"].reading("m-101", 12_345, ts=T0 + 30),
                             edges["gw-1"].reading("m-102", 500, ts=T0 + 30),
                             edges["gw-1"].event("m-101", "alarm1", ts=T0 + 31)],
         now=T0 + 32)  # fmt: skip
    send(db, edges["gw-2"], [edges["gw-2"].reading("m-201", 2_000, 1_230_000, ts=T0 + 40)],
         now=T0 + 41)  # fmt: skip
    with db.session() as s:
        vending.refund(s, "m-101", 5 * Y, ACTOR, now=T0 + 50)
    sync(db, edges, now=T0 + 60)
    send(db, edges["gw-1"], [edges["gw-1"].reading("m-101", 0, ts=T0 + 90)], now=T0 + 91)
    with db.session() as s:
        alarms.evaluate_lost_contact(s, now=T0 + 100_000)
    db.dispose()


def make_edge(path: Path) -> None:
    from edge.cache.store import Store
    from edge.core import engine
    from shared.codec import envelope, messages

    t0 = 1_767_225_600
    store = Store(path)
    ring = envelope.Keyring({1: bytes(range(32))}, current=1)
    with store.transaction():
        store.put_tariff("flat", {"version": 1, "effective_from": 0,
                                  "price_micro_yuan_per_kwh": 1_000_000})  # fmt: skip
        for i, meter in enumerate(("m-101", "m-102", "m-103"), start=1):
            store.upsert_meter(meter, "bus1", str(i), "acrel-ddsy1352", {"ct": 1})
            state = engine.new_state(meter, settings={"tariff_id": "flat"})
            state["account"] = "opened"
            state["balance_micro_yuan"] = 25 * Y * i
            state["credits_micro_yuan"] = 30 * Y * i
            state["charges_micro_yuan"] = 5 * Y * i
            store.save_state(meter, state, balance_micro_yuan=25 * Y * i, display_state="opened",
                             relay="closed", mode="prepaid", ts=t0 + i)  # fmt: skip
            store.add_ledger(meter, t0, "credit", 30 * Y * i, purchase_no=1, cmd=f"c-{i}")
            store.book_charges(meter, t0 + 100, 5 * Y * i, 5000 * i)
            store.add_history(meter, t0 // 1800, {"ts": t0, "energy_wh": 5000 * i},
                              25 * Y * i, 5 * Y * i)  # fmt: skip
        store.inbox_put("c-1", "m-101", "credit", {"status": "applied"}, t0)
        store.hold("m-102", 3, {"id": "c-9", "op": "credit", "purchase_no": 3}, t0)
        store.put_kv("replay_down", {"size": 4096, "highest": 7, "seen": "7f"})
    ids = []
    with store.transaction():
        for n in range(3):
            ids.append(store.enqueue(messages.hb(t0 + n, 0, {}, n), t0 + n))
    seq = store.next_seq()
    batch = store.outbox_batch(2, 65536)
    sealed = envelope.seal(ring, envelope.UP, "gw-1", seq, t0 * 1000, {"v": 1, "m": []})
    with store.transaction():
        store.move_to_inflight(seq, sealed, [row_id for row_id, _ in batch], t0)
    store.close()


def dump(path: Path, out: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        text = "\n".join(conn.iterdump()) + "\n"
        # iterdump leaves out the schema version the edge store keeps in user_version.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version:
            text += f"PRAGMA user_version = {version};\n"
    finally:
        conn.close()
    out.write_text(text, encoding="utf-8")
    print(f"{out}: {len(text)} bytes")


def main() -> int:
    old = Path(sys.argv[1]).resolve()
    if str(old) not in sys.path[:2]:
        print("run with PYTHONPATH set to the previous release's tree", file=sys.stderr)
        return 2
    (HERE / "fixtures").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        cloud, edge = Path(tmp) / "cloud.db", Path(tmp) / "edge.sqlite"
        make_cloud(cloud)
        make_edge(edge)
        dump(cloud, HERE / "fixtures" / "previous_cloud.sql")
        dump(edge, HERE / "fixtures" / "previous_edge.sql")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
