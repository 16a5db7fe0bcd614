"""The collector store: migrations, atomic units, durable sequence numbers, outbox, retention."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edge.cache import store as store_mod
from edge.cache.schema import LATEST
from edge.cache.store import Store, StoreError, open_readonly


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "edge.sqlite", seq_block=10)
    with s.transaction():
        s.upsert_meter("m1", "bus1", "1", "acrel-ddsy1352", {"ct": 1})
    return s


def test_new_store_is_migrated_wal_and_fully_synchronous(store: Store) -> None:
    assert store.conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_store_written_by_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer gridvend"):
        Store(path)


def test_reopening_keeps_meters_state_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    s = Store(path)
    with s.transaction():
        s.upsert_meter("m1", "bus1", "1", "acrel", {})
        s.save_state(
            "m1",
            {"balance_micro_yuan": 5},
            balance_micro_yuan=5,
            display_state="opened",
            relay="closed",
            mode="prepaid",
            ts=10,
        )
    s.close()
    again = Store(path)
    assert again.meters()["m1"]["state"] == {"balance_micro_yuan": 5}
    assert again.meters()["m1"]["display_state"] == "opened"


def test_sequence_numbers_strictly_increase_across_unclean_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    seen: list[int] = []
    for _ in range(5):
        s = Store(path, seq_block=4)
        seen += [s.next_seq() for _ in range(3)]
        s.conn.close()  # no clean close: as after a crash
    assert seen == sorted(set(seen))
    assert seen[0] == 1


def test_sequence_reservation_is_refused_inside_a_transaction(store: Store) -> None:
    for _ in range(10):
        store.next_seq()  # use up the first block
    with pytest.raises(StoreError, match="outside a transaction"), store.transaction():
        store.next_seq()


def test_a_failed_unit_of_work_leaves_nothing_behind(store: Store) -> None:
    def crash_in_the_middle() -> None:
        with store.transaction():
            store.add_ledger("m1", 1, "credit", 100, purchase_no=1)
            store.outbox.enqueue({"t": "need_purchase", "meter": "m1", "purchase_no": 1}, 1)
            raise RuntimeError("crash in the middle")

    with pytest.raises(RuntimeError, match="crash in the middle"):
        crash_in_the_middle()
    assert store.ledger("m1") == []
    assert store.outbox.backlog()["queued"] == 0


def test_transactions_do_not_nest(store: Store) -> None:
    with pytest.raises(StoreError, match="nest"), store.transaction(), store.transaction():
        pass
    assert not store.in_transaction


def test_a_purchase_number_is_booked_once_per_meter(store: Store) -> None:
    with store.transaction():
        store.add_ledger("m1", 1, "credit", 100, purchase_no=1)
    with pytest.raises(sqlite3.IntegrityError), store.transaction():
        store.add_ledger("m1", 2, "credit", 100, purchase_no=1)
    assert [r["purchase_no"] for r in store.ledger("m1")] == [1]


def test_ledger_totals_classify_money_and_book_charges_by_difference(store: Store) -> None:
    with store.transaction():
        store.add_ledger("m1", 1, "credit", 10_000, purchase_no=1)
        store.add_ledger("m1", 2, "transfer_in", 500)
        store.add_ledger("m1", 3, "refund", 2_000)
        assert store.book_charges("m1", 4, charges_micro_yuan=700, energy_wh=7) == 700
        assert store.book_charges("m1", 5, charges_micro_yuan=700, energy_wh=7) == 0
        assert store.book_charges("m1", 6, charges_micro_yuan=1_000, energy_wh=10) == 300
    totals = store.ledger_totals("m1")
    assert totals == {
        "credits_micro_yuan": 10_500,
        "refunds_micro_yuan": 2_000,
        "charges_micro_yuan": 1_000,
    }
    assert [r["amount_micro_yuan"] for r in store.ledger("m1") if r["kind"] == "charge"] == [
        700,
        300,
    ]
    with pytest.raises(StoreError, match="not one of"):
        store.add_ledger("m1", 1, "gift", 1)


def test_outbox_keeps_order_numbers_messages_and_batches_within_limits(store: Store) -> None:
    with store.transaction():
        ids = [
            store.outbox.enqueue({"t": "need_purchase", "meter": f"m{i}", "purchase_no": 1}, i)
            for i in range(10)
        ]
    assert ids == sorted(ids)
    batch = store.outbox.batch(max_msgs=4, max_bytes=10_000)
    assert [i for i, _ in batch] == ids[:4]
    assert batch[0][1].startswith(f'{{"id":{ids[0]},"t":"need_purchase"')
    small = store.outbox.batch(max_msgs=100, max_bytes=120)
    assert 1 <= len(small) < 4


def test_sealed_envelope_replaces_its_rows_until_acked(store: Store) -> None:
    with store.transaction():
        for i in range(5):
            store.outbox.enqueue({"t": "need_purchase", "meter": "m1", "purchase_no": i + 1}, i)
    batch = store.outbox.batch(3, 10_000)
    seq = store.next_seq()
    store.outbox.move_to_inflight(seq, b"sealed-bytes", [i for i, _ in batch], ts=1)
    assert store.outbox.backlog() == {"queued": 2, "inflight_envelopes": 1, "inflight": 3}
    assert store.outbox.inflight() == [(seq, b"sealed-bytes", 1)]
    assert store.outbox.ack([seq + 100]) == 0  # unknown ack: nothing happens
    assert store.outbox.ack([seq]) == 3
    assert store.outbox.ack([seq]) == 0  # repeated ack: harmless
    assert store.outbox.backlog() == {"queued": 2, "inflight_envelopes": 0, "inflight": 0}


def test_inbox_returns_the_stored_result_of_a_command(store: Store) -> None:
    result = {"t": "result", "cmd": "c1", "status": "applied", "balance_micro_yuan": 5}
    with store.transaction():
        store.inbox.put("c1", "m1", "credit", result, 100)
    assert store.inbox.get("c1") == result
    assert store.inbox.get(1) is None  # an integer id is a different id


def test_held_credits_are_kept_by_purchase_number_until_released(store: Store) -> None:
    with store.transaction():
        store.inbox.hold("m1", 3, {"id": "c3"}, 1)
        store.inbox.hold("m1", 5, {"id": "c5"}, 1)
    assert list(store.inbox.held("m1")) == [3, 5]
    with store.transaction():
        store.inbox.release("m1", 3)
    assert list(store.inbox.held("m1")) == [5]


def test_tariff_versions_are_kept_in_effective_order(store: Store) -> None:
    with store.transaction():
        store.tariffs.put("t1", {"version": 2, "effective_from": 200, "price": 2})
        store.tariffs.put("t1", {"version": 1, "effective_from": 100, "price": 1})
        store.tariffs.put("t1", {"version": 2, "effective_from": 200, "price": 3})  # replaces
    assert store.tariffs.all() == {
        "t1": [
            {"version": 1, "effective_from": 100, "price": 1},
            {"version": 2, "effective_from": 200, "price": 3},
        ]
    }


def test_retention_prunes_history_and_old_charges_but_never_unacked_uplink(store: Store) -> None:
    day = 86_400
    with store.transaction():
        for ts in (0, day, 10 * day):
            store.add_history("m1", ts // 1800, {"ts": ts, "energy_wh": ts}, 0, 0)
            store.outbox.enqueue({"t": "need_purchase", "meter": "m1", "purchase_no": 1}, ts)
        store.add_ledger("m1", 0, "credit", 5_000, purchase_no=1)
        store.book_charges("m1", 0, 100, 1)
        store.book_charges("m1", 10 * day, 250, 3)
        store.inbox.put("old", "m1", "refund", {"status": "applied"}, 0)
        store.inbox.put("held", "m1", "credit", {"status": "held"}, 0)
    seq = store.next_seq()
    store.outbox.move_to_inflight(seq, b"x", [], ts=0)
    counts = store.prune(
        now=10 * day, history_keep_s=5 * day, inbox_keep_s=5 * day, ledger_keep_s=5 * day
    )
    assert counts == {"history": 2, "inbox": 1, "ledger_charges": 1}
    assert [r["ts"] for r in store.history("m1")] == [10 * day]
    assert store.outbox.backlog()["queued"] == 3
    assert store.outbox.backlog()["inflight_envelopes"] == 1
    assert store.ledger_totals("m1")["charges_micro_yuan"] == 250  # 100 rolled up + 150
    assert store.ledger_totals("m1")["credits_micro_yuan"] == 5_000
    assert store.inbox.get("held") == {"status": "held"}


def test_readonly_connection_reads_while_the_writer_holds_a_transaction(store: Store) -> None:
    with store.transaction():
        store.save_state(
            "m1",
            {"b": 1},
            balance_micro_yuan=1,
            display_state="opened",
            relay="closed",
            mode="prepaid",
            ts=1,
        )
    with store.transaction():
        store.save_state(
            "m1",
            {"b": 2},
            balance_micro_yuan=2,
            display_state="opened",
            relay="closed",
            mode="prepaid",
            ts=2,
        )
        reader = open_readonly(store.path)
        row = reader.execute("SELECT balance_micro_yuan FROM meters").fetchone()
        assert row[0] == 1  # the committed value, not the one in progress
        reader.close()


def test_readonly_open_of_a_missing_store_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="has the agent run"):
        open_readonly(tmp_path / "nope.sqlite")


def test_ledger_kinds_follow_the_architecture_classification() -> None:
    assert set(store_mod.CREDIT_KINDS) == {"credit", "transfer_in", "settlement_credit"}
    assert set(store_mod.REFUND_KINDS) == {"refund", "reversal", "settlement_refund"}


def test_an_inbox_row_outlives_retention_until_its_result_is_acked(store: Store) -> None:
    day = 86_400
    with store.transaction():
        result_id = store.outbox.enqueue({"t": "need_purchase", "meter": "m1", "purchase_no": 1}, 0)
        store.inbox.put("r1", "m1", "refund", {"status": "applied"}, 0, result_id)
    store.prune(now=40 * day, history_keep_s=day, inbox_keep_s=30 * day, ledger_keep_s=day)
    assert store.inbox.get("r1") == {"status": "applied"}  # queued: the cloud may resend r1
    seq = store.next_seq()
    store.outbox.move_to_inflight(seq, b"x", [result_id], ts=40 * day)
    store.prune(now=40 * day, history_keep_s=day, inbox_keep_s=30 * day, ledger_keep_s=day)
    assert store.inbox.get("r1") == {"status": "applied"}  # sealed, not acked yet
    store.outbox.ack([seq])
    store.prune(now=40 * day, history_keep_s=day, inbox_keep_s=30 * day, ledger_keep_s=day)
    assert store.inbox.get("r1") is None
