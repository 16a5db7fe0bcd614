"""The bridge against a real Mosquitto and a real SQLite database, driven by a scripted collector
(real paho, real envelopes and keys): exactly-once ingest, re-acks, refusal of bad envelopes,
command order and resends, durable downlink sequence numbers, north payloads per asyncapi."""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

from sqlalchemy import func, select

from cloud.bridge.link import Inbound
from cloud.bridge.worker import Bridge, BridgeSettings
from cloud.control import commands, lifecycle
from cloud.models import ArchiveRun, Command, Gateway, InboxEntry, Meter, Reading, Sale
from cloud.money import ledger, sales
from cloud.park import gateways, inventory
from cloud.reporting import archive
from shared.codec import envelope, messages
from tests.e2e import asyncapi
from tests.e2e.collector import NorthListener, wait_for
from tests.e2e.conftest import TEST_ACTOR, BridgeEnv


def reading(
    rid: int, meter: str, energy_wh: int, charge: int, totals: dict[str, int]
) -> dict[str, Any]:
    """A reading whose running totals continue ``totals`` (updated in place)."""
    totals["charges"] = totals.get("charges", 0) + charge
    credits, refunds = totals.get("credits", 0), totals.get("refunds", 0)
    return messages.reading(
        id=rid,
        meter=meter,
        ts=1_767_225_600 + rid,
        energy_wh=energy_wh,
        power_w=1200,
        relay="closed",
        charge_micro_yuan=charge,
        balance_micro_yuan=credits - refunds - totals["charges"],
        credits_micro_yuan=credits,
        refunds_micro_yuan=refunds,
        charges_micro_yuan=totals["charges"],
    )


def count(env: BridgeEnv, model: Any) -> int:
    with env.db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_uplink_is_applied_once_and_a_replay_is_acked_again(bridge_env: BridgeEnv) -> None:
    col = bridge_env.collector().start()
    try:
        totals: dict[str, int] = {}
        batch = [reading(i, "m2", 1000 + i, 7, totals) for i in range(1, 6)]
        seq, data = col.seal(batch)
        col.publish(data)
        wait_for("the ack", lambda: seq in col.acked)
        assert count(bridge_env, Reading) == 5
        col.publish(data)  # the same bytes again (a lost ack, a QoS 1 duplicate)
        wait_for("the second ack", lambda: col.acked.count(seq) == 2)
        assert count(bridge_env, Reading) == 5
        assert count(bridge_env, InboxEntry) == 1
        with bridge_env.db.session(readonly=True) as s:
            meter = s.get(Meter, "m2")
            assert meter is not None
            assert meter.charges_micro_yuan == 35
            assert ledger.identity_holds(meter)
        assert bridge_env.bridge.stats.reacked == 1
    finally:
        col.stop()


def test_forged_tampered_unknown_key_misrouted_and_garbage_envelopes_change_nothing(
    bridge_env: BridgeEnv,
) -> None:
    col = bridge_env.collector().start()
    try:
        totals: dict[str, int] = {}
        good = [reading(1, "m2", 1000, 5, totals)]
        ts = 1_767_225_600_000
        wrong_key = envelope.Keyring({1: secrets.token_bytes(32)}, 1)
        forged = envelope.seal(wrong_key, envelope.UP, "gw1", 101, ts, messages.body(good))
        _, sealed = col.seal(good, seq=102)
        tampered = sealed[:-20] + bytes([sealed[-20] ^ 1]) + sealed[-19:]
        other_id = envelope.Keyring({9: bridge_env.key}, 9)
        unknown_key = envelope.seal(other_id, envelope.UP, "gw1", 103, ts, messages.body(good))
        _, misrouted = col.seal(good, seq=104)
        col.publish(forged)
        col.publish(tampered)
        col.publish(unknown_key)
        col.publish(misrouted, topic="gridvend/v1/park/gw2/up")
        col.publish(b"GV\x01 not an envelope at all")
        stats = bridge_env.bridge.stats
        wait_for("five rejections", lambda: sum(stats.rejected.values()) >= 5)
        assert stats.rejected == {
            "ForgedError": 2,
            "UnknownKeyError": 1,
            "Topic": 1,
            "MalformedError": 1,
        }
        assert count(bridge_env, Reading) == 0
        assert count(bridge_env, InboxEntry) == 0
        assert col.acked == []
        # The link still works, and the sequence numbers of refused envelopes were not burnt.
        col.publish(sealed)
        wait_for("the good envelope's ack", lambda: 102 in col.acked)
        assert count(bridge_env, Reading) == 1
    finally:
        col.stop()


def _issue(env: BridgeEnv, meter: str, action: str) -> int:
    with env.db.session() as s:
        meter_row = s.get(Meter, meter)
        assert meter_row is not None
        (command,) = commands.issue(s, [meter_row], action, None, TEST_ACTOR)
        return command.id


def test_commands_go_in_order_and_unanswered_ones_are_resent_with_new_sequence_numbers(
    bridge_env: BridgeEnv,
) -> None:
    trip = _issue(bridge_env, "m2", "trip")
    close = _issue(bridge_env, "m2", "close")
    col = bridge_env.collector().start()
    try:
        wait_for("both commands", lambda: any(c["id"] == close for c in col.commands))
        ids = [c["id"] for c in col.commands if c["meter"] == "m2"]
        assert ids[:2] == [trip, close]
        # No result: after retry_after_s both come again, in order, in a new envelope.
        wait_for("the resend", lambda: [c["id"] for c in col.commands].count(close) >= 2, 20)
        ids = [c["id"] for c in col.commands if c["meter"] == "m2"]
        assert ids[2:4] == [trip, close]
        col.send(
            [
                messages.result(trip, "m2", "mode", "applied", None, 0),
                messages.result(close, "m2", "mode", "applied", None, 0),
            ]
        )
        keep = _issue(bridge_env, "m2", "keep_power")
        wait_for("the next command", lambda: any(c["id"] == keep for c in col.commands))
        with col.lock:
            assert len(col.down_seqs) == len(set(col.down_seqs)), "a sequence number repeated"
            assert col.down_errors == []
        with bridge_env.db.session(readonly=True) as s:
            for command_id in (trip, close):
                row = s.get(Command, command_id)
                assert row is not None
                assert row.status == lifecycle.APPLIED
                assert row.send_count >= 2
    finally:
        col.stop()


def test_downlink_sequence_numbers_are_never_reused_across_a_bridge_restart(
    bridge_env: BridgeEnv,
) -> None:
    col = bridge_env.collector().start()
    try:
        totals: dict[str, int] = {}
        first = col.send([reading(1, "m3", 10, 0, totals)])
        wait_for("an ack", lambda: first in col.acked)
        with col.lock:
            before = list(col.down_seqs)
        bridge_env.restart_bridge()
        second = col.send([reading(2, "m3", 20, 0, totals)])
        wait_for("an ack after the restart", lambda: second in col.acked)
        with col.lock:
            after = col.down_seqs[len(before) :]
        assert after
        assert min(after) > max(before)
    finally:
        col.stop()


def test_a_sale_flows_to_the_collector_and_north_payloads_match_asyncapi(
    bridge_env: BridgeEnv,
) -> None:
    doc = asyncapi.load()
    north = NorthListener(bridge_env.broker.port).start()
    col = bridge_env.collector().start()
    try:
        with bridge_env.db.session() as s:
            sale, _ = sales.sell(s, "m1", 50_000_000, "cash", TEST_ACTOR, idempotency_key="k1")
            sale_id = sale.id
        wait_for("open_account", lambda: any(c["op"] == "open_account" for c in col.commands))
        opening = next(c for c in col.commands if c["op"] == "open_account")
        col.send([messages.result(opening["id"], "m1", "open_account", "applied", None, 0)])
        wait_for("the credit", lambda: any(c["op"] == "credit" for c in col.commands))
        credit = next(c for c in col.commands if c["op"] == "credit")
        assert credit["args"] == {"purchase_no": 1, "amount_micro_yuan": 50_000_000}
        totals = {"credits": 50_000_000}
        col.send(
            [
                messages.result(credit["id"], "m1", "credit", "applied", None, 50_000_000, 1),
                reading(1, "m1", 5000, 1_250, totals),
            ]
        )
        wait_for("the north sale", lambda: north.payloads("/north/sales"))
        wait_for("the north state", lambda: north.payloads("/meters/m1/state"))
        with bridge_env.db.session(readonly=True) as s:
            row = s.get(Sale, sale_id)
            meter = s.get(Meter, "m1")
            assert row is not None
            assert meter is not None
            assert row.status == "applied"
            assert meter.balance_micro_yuan == 50_000_000 - 1_250
            assert ledger.identity_holds(meter)
        (sale_msg,) = north.payloads("/north/sales")
        assert sale_msg["status"] == "applied"
        assert sale_msg["purchase_no"] == 1
        state = north.payloads("/meters/m1/state")[-1]
        assert state["balance_micro_yuan"] == 50_000_000 - 1_250
        assert state["unit"] == "U1"
        with north.lock:
            received = list(north.received)
        channels = {asyncapi.check(doc, topic, json.loads(p)) for topic, p, _ in received}
        assert {
            "gridvend/v1/{site}/north/sales",
            "gridvend/v1/{site}/north/meters/{meter}/state",
            "gridvend/v1/{site}/north/meters/{meter}/readings",
            "gridvend/v1/{site}/north/gateways/{gateway}/status",
        } <= channels
    finally:
        col.stop()
        north.stop()


def test_an_offline_collector_gets_no_commands_until_it_says_online_again(
    bridge_env: BridgeEnv,
) -> None:
    north = NorthListener(bridge_env.broker.port).start()
    col = bridge_env.collector().start()
    try:
        wait_for("open_account", lambda: any(c["op"] == "open_account" for c in col.commands))
        col.client.publish(col.topic_status, b"offline", qos=1, retain=True).wait_for_publish(10)

        def offline() -> bool:
            with bridge_env.db.session(readonly=True) as s:
                gw = s.get(Gateway, "gw1")
                return gw is not None and not gw.online

        wait_for("the collector to be offline", offline)
        trip = _issue(bridge_env, "m2", "trip")
        wait_for(
            "the north status offline",
            lambda: any(not p["online"] for p in north.payloads("/gateways/gw1/status")),
        )
        before = len(col.commands)
        time.sleep(1.0)  # ten command polls (every 0.1 s) while it is offline
        assert not any(c["id"] == trip for c in col.commands[before:])
        col.client.publish(col.topic_status, b"online", qos=1, retain=True).wait_for_publish(10)
        wait_for("the trip after coming back", lambda: any(c["id"] == trip for c in col.commands))
    finally:
        col.stop()
        north.stop()


def test_a_silent_meter_is_marked_lost_and_the_north_state_says_so(
    bridge_env: BridgeEnv,
) -> None:

    with bridge_env.db.session() as s:
        inventory.set_defaults(s, "park", meter_lost_after_s=1, gateway_lost_after_s=3600)
    bridge_env.restart_bridge(lost_contact_every_s=0.5)
    north = NorthListener(bridge_env.broker.port).start()
    col = bridge_env.collector().start()
    try:
        col.send([reading(1, "m3", 10, 0, {})])
        wait_for(
            "m3's retained state to say lost_contact",
            lambda: any(p["state"] == "lost_contact" for p in north.payloads("/meters/m3/state")),
            20,
        )
        with bridge_env.db.session(readonly=True) as s:
            meter = s.get(Meter, "m3")
            assert meter is not None
            assert meter.lost_contact
    finally:
        col.stop()
        north.stop()


def test_a_sequence_older_than_the_window_is_applied_once_unless_the_inbox_holds_it(
    bridge_env: BridgeEnv,
) -> None:
    col = bridge_env.collector().start()
    try:
        totals: dict[str, int] = {}
        _, first = col.seal([reading(1, "m2", 10, 0, totals)], seq=1)
        col.publish(first)
        wait_for("seq 1 acked", lambda: 1 in col.acked)
        col.publish(col.seal([reading(2, "m2", 20, 0, totals)], seq=5000)[1])
        wait_for("seq 5000 acked", lambda: 5000 in col.acked)
        col.publish(first)  # 4999 below the highest: beyond the 4096 window, but in the inbox
        wait_for("seq 1 acked again", lambda: col.acked.count(1) == 2)
        assert count(bridge_env, Reading) == 2
        # Beyond the window and never applied (lost again and again while the collector
        # restarted): authentic, so applied now; the inbox keeps it exactly once.
        late = col.seal([reading(3, "m2", 30, 0, totals)], seq=2)[1]
        col.publish(late)
        wait_for("seq 2 acked", lambda: 2 in col.acked)
        assert count(bridge_env, Reading) == 3
        col.publish(late)
        wait_for("seq 2 acked again", lambda: col.acked.count(2) == 2)
        assert count(bridge_env, Reading) == 3
        assert bridge_env.bridge.stats.rejected.get("ReplayError") is None
    finally:
        col.stop()


def test_after_a_key_rotation_both_the_new_and_the_previous_key_are_accepted(
    bridge_env: BridgeEnv,
) -> None:

    new_key = secrets.token_bytes(32)
    with bridge_env.db.session() as s:
        gateways.rotate_key(s, "gw1", 2, new_key.hex())
    col = bridge_env.collector()
    # Mid-rotation the collector holds both keys and still seals with the old one.
    col.keyring = envelope.Keyring({1: bridge_env.key, 2: new_key}, current=1)
    col.start()
    try:
        totals: dict[str, int] = {}
        old = col.send([reading(1, "m2", 10, 0, totals)])  # sealed with key 1, the previous
        col.keyring = envelope.Keyring({1: bridge_env.key, 2: new_key}, current=2)
        new = col.send([reading(2, "m2", 20, 0, totals)])  # sealed with key 2, the current
        wait_for("both acked", lambda: old in col.acked and new in col.acked, 20)
        with col.lock:
            assert col.down_errors == []  # the acks are sealed with the current key
        assert count(bridge_env, Reading) == 2
    finally:
        col.stop()


def test_the_scheduled_archival_moves_old_readings_out_and_the_ledger_still_adds_up(
    bridge_env: BridgeEnv, tmp_path: Any
) -> None:

    col = bridge_env.collector().start()
    try:
        totals: dict[str, int] = {}
        # Readings of 2026-01-01: older than the site's 90 days of raw readings.
        seq = col.send([reading(i, "m2", 100 * i, 11, totals) for i in range(1, 4)])
        wait_for("the readings", lambda: seq in col.acked)
        assert count(bridge_env, Reading) == 3
        out = tmp_path / "archive"
        bridge_env.bridge.stop()
        bridge_env.thread.join(30)
        bridge_env.bridge = Bridge(
            bridge_env.db,
            bridge_env.bridge.settings,
            archiver=lambda db, now: archive.job(db, now, out_dir=out),
        )
        bridge_env.bridge.settings.archive_every_s = 0.5
        bridge_env.thread = threading.Thread(target=bridge_env.bridge.run, daemon=True)
        bridge_env.thread.start()
        wait_for("an archive run", lambda: count(bridge_env, ArchiveRun) >= 1, 20)
        assert count(bridge_env, Reading) == 0
        assert list(out.iterdir())
        with bridge_env.db.session(readonly=True) as s:
            meter = s.get(Meter, "m2")
            assert meter is not None
            assert meter.charges_micro_yuan == 33
            assert meter.archived_charges_micro_yuan == 33
            assert ledger.identity_holds(meter)
    finally:
        col.stop()


def test_a_copy_of_an_envelope_in_the_same_batch_is_not_acked_when_the_original_fails(
    bridge_env: BridgeEnv,
) -> None:
    # A collector resends an envelope while the bridge is busy (ack timeout, fast retransmit),
    # so both copies can sit in one batch. The second copy is "seen" only by the batch's own,
    # uncommitted window: acking it is acking something the database may never hold. Here the
    # database refuses the envelope (a trigger stands in for a failing disk): neither copy may
    # be acked, else the collector drops an envelope that was never applied.
    bridge_env.bridge.stop()
    bridge_env.thread.join(30)
    settings = BridgeSettings(
        **{**bridge_env.bridge.settings.__dict__, "client_id": f"b-{secrets.token_hex(4)}"}
    )
    bridge = Bridge(bridge_env.db, settings)
    bridge.link.start()
    col = bridge_env.collector().start()
    try:
        wait_for("the bridge's link", bridge.link.connected.is_set)
        with bridge_env.db.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TRIGGER disk_fails BEFORE INSERT ON readings WHEN NEW.energy_wh = 666 "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
        totals: dict[str, int] = {}
        seq, data = col.seal([reading(1, "m2", 666, 5, totals)])
        bridge.process([Inbound(col.topic_up, data, 0.0), Inbound(col.topic_up, data, 0.0)])
        good, good_data = col.seal([reading(2, "m2", 700, 5, totals)])
        bridge.process([Inbound(col.topic_up, good_data, 0.0)])
        wait_for("the later envelope's ack", lambda: good in col.acked)
        assert seq not in col.acked  # acks leave in order: one for seq would be here by now
        assert count(bridge_env, Reading) == 1
        with bridge_env.db.engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER disk_fails")
        bridge.process([Inbound(col.topic_up, data, 0.0)])  # the collector resends it
        wait_for("its ack once applied", lambda: seq in col.acked)
        assert count(bridge_env, Reading) == 2
        with bridge_env.db.session(readonly=True) as s:
            meter = s.get(Meter, "m2")
            assert meter is not None
            assert meter.charges_micro_yuan == 10
            assert ledger.identity_holds(meter)
    finally:
        col.stop()
        bridge.link.stop()


def test_a_lanes_commands_are_never_split_across_downlink_envelopes(
    bridge_env: BridgeEnv,
) -> None:
    # A lane's commands go out together, in order. Split over two envelopes, the first can be
    # lost (the collector drops an envelope its store failed to apply) while the second is
    # applied: m3's "close" then runs before its "trip", whose resend later leaves the meter
    # tripped against the operator's last word.
    bridge_env.bridge.stop()
    bridge_env.thread.join(30)
    settings = BridgeSettings(
        **{
            **bridge_env.bridge.settings.__dict__,
            "client_id": f"b-{secrets.token_hex(4)}",
            "commands_per_envelope": 2,
            "retry_after_s": 3600,
        }
    )
    bridge = Bridge(bridge_env.db, settings)
    bridge.link.start()
    col = bridge_env.collector().start()
    try:
        wait_for("the bridge's link", bridge.link.connected.is_set)
        with bridge_env.db.session() as s:
            gateways.set_status(s, "gw1", True)
        seeded = bridge.dispatch_commands()  # the seeded account's, out of the way
        wait_for("the seeded commands", lambda: len(col.commands) == seeded)
        with col.lock:
            col.envelopes.clear()
            col.commands.clear()
        read = _issue(bridge_env, "m2", "read_now")
        trip = _issue(bridge_env, "m3", "trip")
        close = _issue(bridge_env, "m3", "close")
        assert bridge.dispatch_commands() == 3
        wait_for("the commands", lambda: len(col.commands) == 3)
        with col.lock:
            ids = [[c["id"] for c in env] for env in col.envelopes]
        assert [i for env in ids for i in env] == [read, trip, close]
        assert any(trip in env and close in env for env in ids), ids
    finally:
        col.stop()
        bridge.link.stop()
