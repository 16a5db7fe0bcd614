"""The agent end to end, in process: the real simulator on TCP, the real bus and engine, a real
SQLite store, a private Mosquitto and the test receiver in the cloud's place."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import edge.sim
from edge.agent import Agent, StoreLocked
from edge.config import load
from shared.codec import envelope, messages
from tests.edge.agentkit import (
    GATEWAY,
    RING,
    SITE,
    check_charge_continuity,
    check_exactly_once,
    check_identity,
    store_snapshot,
    until,
    write_config,
)
from tests.edge.receiver import Receiver
from tests.support.services import Mosquitto

LOAD_W = 3_600


@contextlib.asynccontextmanager
async def agent_running(cfg_path: Path) -> AsyncIterator[Agent]:
    agent = Agent(load(cfg_path))
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: agent.sync is not None and agent.processor is not None, 30, "start")
        yield agent
    finally:
        agent.request_stop()
        await asyncio.wait_for(task, 30)


async def command_and_wait(
    rx: Receiver, meter: str, op: str, timeout_s: float = 60, **args: Any
) -> dict[str, Any]:
    cmd_id = await asyncio.to_thread(rx.command, meter, op, args)
    await until(lambda: rx.final_result(cmd_id) is not None, timeout_s, f"{op} on {meter}")
    result = rx.final_result(cmd_id)
    assert result is not None
    return result


def meters_of(agent: Agent) -> list[str]:
    return sorted(agent.address_of)


def test_offline_enforcement_trips_within_a_sweep_and_nothing_of_the_outage_is_lost(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async def scenario() -> None:
        async with edge.sim.running("acrel-ddsy1352", count=3, speed=20) as sim:
            for m in sim.bus.meters.values():
                m.load_override_w = LOAD_W  # 20 Wh per wall second at speed 20
            cfg = write_config(
                tmp_path,
                mosquitto.url,
                [("b1", sim.url, [1, 2, 3])],
                report_s=0,
                sweep_interval_ms=1000,
            )
            with Receiver(mosquitto.port, SITE, GATEWAY, RING, resend_after_s=3) as rx:
                async with agent_running(cfg) as agent:
                    ids = meters_of(agent)
                    for meter in ids:
                        assert (await command_and_wait(rx, meter, "open_account"))[
                            "status"
                        ] == "applied"
                        r = await command_and_wait(
                            rx, meter, "credit", purchase_no=1, amount_micro_yuan=150_000
                        )
                        assert r["status"] == "applied"
                    # the link goes down; consumption goes on; balances cross zero
                    mosquitto.stop()
                    assert agent.sync is not None
                    await until(lambda: not agent.sync.connected.is_set(), 30, "link down")
                    relays = sim.bus.meters
                    await until(
                        lambda: all(not relays[a].relay_closed for a in (1, 2, 3)),
                        90,
                        "every relay tripped while offline",
                    )
                    assert not agent.sync.connected.is_set()
                    states = agent.processor.states if agent.processor else {}
                    for meter in ids:
                        assert states[meter]["balance_micro_yuan"] <= 0
                    # the broker returns; credit arrives; power comes back
                    mosquitto.start()
                    for meter in ids:
                        r = await command_and_wait(
                            rx, meter, "credit", purchase_no=2, amount_micro_yuan=5_000_000
                        )
                        assert r["status"] == "applied"
                        assert r["balance_micro_yuan"] > 0
                    await until(
                        lambda: all(relays[a].relay_closed for a in (1, 2, 3)), 60, "closed"
                    )
                    await until(lambda: agent.sync.backlog() == 0, 60, "uplink drained")
                    await asyncio.sleep(0.5)
                    await until(lambda: agent.sync.backlog() == 0, 60, "uplink drained")
                snap = store_snapshot(tmp_path / "edge.sqlite")
                await until(lambda: len(rx.messages) > 0 and snap["backlog"] == 0, 5, "final")
                msgs = list(rx.messages)
        check_exactly_once(msgs)
        last = check_charge_continuity(msgs)
        for meter in ids:
            state = snap["states"][meter]
            check_identity(state)
            assert snap["credits"][meter] == [1, 2]
            assert snap["ledger"][meter]["credit"] == state["credits_micro_yuan"] == 5_150_000
            reports = [m for m in msgs if m["t"] == "reading" and m["meter"] == meter]
            funded = next(i for i, m in enumerate(reports) if m["balance_micro_yuan"] > 0)
            crossing = next(
                i for i, m in enumerate(reports) if i > funded and m["balance_micro_yuan"] <= 0
            )
            assert reports[crossing]["relay"] == "closed"
            # the very next poll of the meter already finds the relay open: tripped within a sweep
            assert reports[crossing + 1]["relay"] == "open", reports[crossing : crossing + 3]
            kinds = [m["kind"] for m in msgs if m["t"] == "event" and m["meter"] == meter]
            assert "trip" in kinds
            assert "close" in kinds
            assert "arrears" in kinds
            assert last[meter]["charges_micro_yuan"] <= state["charges_micro_yuan"]
        assert rx.reused == []

    asyncio.run(scenario())


def test_purchase_n_plus_1_before_n_is_held_n_is_requested_and_both_apply_in_order(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async def scenario() -> None:
        async with edge.sim.running("acrel-ddsy1352", count=1) as sim:
            cfg = write_config(tmp_path, mosquitto.url, [("b1", sim.url, [1])])
            with Receiver(mosquitto.port, SITE, GATEWAY, RING) as rx:
                async with agent_running(cfg):
                    await command_and_wait(rx, "b1-1", "open_account")
                    c2 = await asyncio.to_thread(
                        rx.command,
                        "b1-1",
                        "credit",
                        {"purchase_no": 2, "amount_micro_yuan": 2_000_000},
                    )
                    await until(lambda: bool(rx.of_type("need_purchase")), 30, "need_purchase")
                    assert rx.of_type("need_purchase")[0]["purchase_no"] == 1
                    assert rx.results[c2][0]["status"] == "held"
                    c1 = await asyncio.to_thread(
                        rx.command,
                        "b1-1",
                        "credit",
                        {"purchase_no": 1, "amount_micro_yuan": 1_000_000},
                    )
                    await until(lambda: rx.final_result(c1) and rx.final_result(c2), 30, "both")
                    r1, r2 = rx.final_result(c1), rx.final_result(c2)
                    assert r1
                    assert r2
                    assert (r1["status"], r1["purchase_no"]) == ("applied", 1)
                    assert (r2["status"], r2["purchase_no"]) == ("applied", 2)
                    assert r2["balance_micro_yuan"] - r1["balance_micro_yuan"] <= 2_000_000
                snap = store_snapshot(tmp_path / "edge.sqlite")
        assert snap["credits"]["b1-1"] == [1, 2]
        check_identity(snap["states"]["b1-1"])

    asyncio.run(scenario())


def test_bad_downlink_input_is_rejected_and_changes_no_balance(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async def scenario() -> None:
        async with edge.sim.running("acrel-ddsy1352", count=1) as sim:
            cfg = write_config(tmp_path, mosquitto.url, [("b1", sim.url, [1])])
            with Receiver(mosquitto.port, SITE, GATEWAY, RING) as rx:
                async with agent_running(cfg) as agent:
                    assert agent.sync is not None
                    assert agent.processor is not None
                    await command_and_wait(rx, "b1-1", "open_account")
                    await command_and_wait(
                        rx, "b1-1", "credit", purchase_no=1, amount_micro_yuan=10
                    )
                    credit = [
                        messages.cmd(
                            "evil",
                            "b1-1",
                            "credit",
                            {"purchase_no": 2, "amount_micro_yuan": 99_000_000},
                        )
                    ]
                    good = rx.seal_down(credit)
                    tampered = bytearray(good)
                    tampered[-1] ^= 1
                    forged = envelope.seal(
                        envelope.Keyring({1: bytes(32)}, current=1),
                        envelope.DOWN,
                        GATEWAY,
                        50_000,
                        0,
                        messages.body(credit),
                    )
                    wrong_id = envelope.seal(
                        envelope.Keyring({2: bytes(32)}, current=2),
                        envelope.DOWN,
                        GATEWAY,
                        50_001,
                        0,
                        messages.body(credit),
                    )
                    old = rx.seal_down([messages.cmd("e2", "b1-1", "read_now", {})])
                    rx.send_raw(old)
                    await until(lambda: rx.final_result("e2") is not None, 30, "read_now")
                    before = json.dumps(agent.processor.states["b1-1"]["credits_micro_yuan"])
                    malformed = rx.seal_down(
                        [
                            {
                                "t": "cmd",
                                "id": "m",
                                "meter": "b1-1",
                                "op": "credit",
                                "args": {"purchase_no": 2},
                            }
                        ]
                    )
                    for data in (bytes(tampered), forged, wrong_id, old, malformed, b"GV\x01junk"):
                        rx.send_raw(data)
                    await until(
                        lambda: sum(agent.sync.stats.rejected.values()) >= 6, 30, "rejections"
                    )
                    assert agent.processor.states["b1-1"]["credits_micro_yuan"] == 10
                    assert (
                        json.dumps(agent.processor.states["b1-1"]["credits_micro_yuan"]) == before
                    )
                    assert rx.final_result("evil") is None
                    assert rx.final_result("m") is None
                snap = store_snapshot(tmp_path / "edge.sqlite")
        assert snap["credits"]["b1-1"] == [1]
        assert snap["ledger"]["b1-1"]["credit"] == 10

    asyncio.run(scenario())


def test_status_reads_the_store_while_the_agent_runs_and_after_it_stops(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    cfg = tmp_path / "edge.toml"

    def status(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gridvend", "edge", "status", "--config", str(cfg), *extra],
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def scenario() -> None:
        async with edge.sim.running("acrel-ddsy1352", count=2) as sim:
            write_config(tmp_path, mosquitto.url, [("b1", sim.url, [1, 2])])
            with Receiver(mosquitto.port, SITE, GATEWAY, RING) as rx:
                async with agent_running(cfg) as agent:
                    await command_and_wait(rx, "b1-1", "open_account")
                    await command_and_wait(
                        rx, "b1-1", "credit", purchase_no=1, amount_micro_yuan=12_345_678
                    )
                    await until(lambda: agent.processed >= 4, 30, "readings")
                    running = await asyncio.to_thread(status, "--json")
                    assert running.returncode == 0, running.stderr
                    report = json.loads(running.stdout)
                    assert report["agent_running"] is True
                    by_id = {m["meter"]: m for m in report["meters"]}
                    assert 0 < by_id["b1-1"]["balance_micro_yuan"] <= 12_345_678
                    assert by_id["b1-2"]["state"] == "not_opened"
                    assert by_id["b1-1"]["relay"] == "closed"
                    assert by_id["b1-1"]["energy_wh"] > 0
                    try:
                        await Agent(load(cfg)).start()
                    except StoreLocked:
                        pass
                    else:
                        raise AssertionError("a second agent started on the same store")
        stopped = await asyncio.to_thread(status)
        assert stopped.returncode == 0, stopped.stderr
        assert "b1-1" in stopped.stdout
        assert "agent not running" in stopped.stdout
        assert "12.3" in stopped.stdout  # the balance in yuan

    asyncio.run(scenario())


def test_lost_contact_and_a_stuck_relay_reach_the_cloud_as_events(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async def scenario() -> None:
        async with edge.sim.running("acrel-ddsy1352", count=2, speed=20) as sim:
            for m in sim.bus.meters.values():
                m.load_override_w = LOAD_W
            cfg = write_config(tmp_path, mosquitto.url, [("b1", sim.url, [1, 2])])
            text = cfg.read_text().replace("lost_after = 50", "lost_after = 2")
            cfg.write_text(text)
            with Receiver(mosquitto.port, SITE, GATEWAY, RING) as rx:
                async with agent_running(cfg) as agent:
                    for meter in ("b1-1", "b1-2"):
                        await command_and_wait(rx, meter, "open_account")
                    await command_and_wait(
                        rx, "b1-2", "credit", purchase_no=1, amount_micro_yuan=20_000
                    )
                    sim.bus.meters[1].faults["dead"] = True
                    sim.bus.meters[2].faults["relay_stuck"] = True

                    def kinds(meter: str) -> list[str]:
                        return [e["kind"] for e in rx.of_type("event", meter)]

                    await until(lambda: "lost_contact" in kinds("b1-1"), 60, "lost contact")
                    assert agent.processor is not None
                    states = [m["state"] for m in rx.of_type("state", "b1-1")]
                    assert states[-1] == "lost_contact"
                    sim.bus.meters[1].faults.clear()
                    await until(lambda: "contact_restored" in kinds("b1-1"), 60, "contact back")
                    # b1-2 runs out of credit; its relay ignores the trips: a relay fault
                    await until(lambda: "relay_fault" in kinds("b1-2"), 90, "relay fault")
                    assert kinds("b1-2").count("trip") >= 2  # the first and the re-sends
                    assert sim.bus.meters[2].relay_closed

    asyncio.run(scenario())


def test_a_final_commit_that_fails_at_shutdown_is_reported_not_swallowed(
    tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    # The disk fills up while the agent runs: the readings it holds cannot be committed, at
    # shutdown either. They are read again after the restart (the meter keeps its counter), but
    # the operator must hear that the store refused them.
    async def scenario() -> None:
        async with edge.sim.running("acrel-ddsy1352", count=1) as sim:
            cfg = write_config(tmp_path, mosquitto.url, [("b1", sim.url, [1])])
            agent = Agent(load(cfg))
            task = asyncio.create_task(agent.run())
            await until(lambda: agent.processed >= 2, 30, "readings committed")
            conn = sqlite3.connect(tmp_path / "edge.sqlite")
            conn.execute(
                "CREATE TRIGGER disk_full BEFORE UPDATE ON meters "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
            conn.commit()
            conn.close()
            await until(lambda: bool(agent._pending), 30, "readings the store refused")
            agent.request_stop()
            await asyncio.wait_for(task, 30)
            assert agent.final_commit_error is not None
            assert "disk is full" in str(agent.final_commit_error)

    asyncio.run(scenario())
    assert "final_commit_failed" in caplog.text
