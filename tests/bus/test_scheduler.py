"""The bus scheduler with faults: dead meters do not stall the others and are backed off, a
command enqueued mid-sweep goes out next (even inside a multi-request poll), lost contact is
declared and cleared, corrupted replies are retried, a dropped line reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from typing import Any

import pytest

from edge import drivers
from edge.bus import Bus
from edge.errors import BusError, ConfigError, NoAnswerError, UnsupportedError
from edge.sim import Simulator
from edge.sim.server import SimBus
from tests.bus.helpers import address, line, run, true_state, until
from tests.fakes import FakeClock


class Recorder:
    """The agent's side: readings and contact changes as they arrive."""

    def __init__(self) -> None:
        self.readings: list[tuple[Any, dict[str, Any]]] = []
        self.contacts: list[tuple[Any, bool]] = []

    def on_reading(self, addr: Any, reading: dict[str, Any]) -> None:
        self.readings.append((addr, reading))

    def on_contact(self, addr: Any, ok: bool) -> None:
        self.contacts.append((addr, ok))

    def count(self, addr: Any) -> int:
        return sum(1 for a, _ in self.readings if a == addr)


@contextlib.asynccontextmanager
async def running_bus(client: Any, model: str, addresses: Any, rec: Recorder, **options: Any):
    bus = Bus("test", client, drivers.get(model), addresses, rec.on_reading, rec.on_contact,
              options)  # fmt: skip
    task = asyncio.create_task(bus.run())
    try:
        yield bus
    finally:
        await bus.stop()
        await task


def polls_of(sim: Simulator, addr: Any) -> int:
    return sum(1 for a, _ in sim.bus.log if a == addr)


def test_dead_meter_does_not_stall_the_others_and_is_backed_off():
    async def scenario():
        async with line("acrel-ddsy1352", count=6) as (sim, client):
            sim.bus.meter(3).faults["dead"] = True
            rec = Recorder()
            async with running_bus(client, "acrel-ddsy1352", range(1, 7), rec) as bus:
                await until(lambda: bus.health()["sweeps"] > 12, what="12 sweeps")
                sweeps = bus.health()["sweeps"] - 1
                for n in (1, 2, 4, 5, 6):
                    assert rec.count(n) >= sweeps - 1, n
                assert rec.count(3) == 0
                # Backoff: tried in sweeps 1, 2, 4, 7, 12 … (plus one retry in the first).
                assert polls_of(sim, 3) <= 7
                assert rec.contacts == [(3, False)]
                assert bus.health()["lost"] == [3]
                assert bus.health()["backed_off"] == [3]

    run(scenario())


def test_command_enqueued_mid_sweep_goes_out_next():
    async def scenario():
        # 40 ms per answer: a sweep of 8 meters takes ~0.3 s, long enough to land inside it.
        async with line("acrel-ddsy1352", count=8) as (sim, client):
            sim.bus.global_faults["slow_ms"] = 40
            rec = Recorder()
            async with running_bus(client, "acrel-ddsy1352", range(1, 9), rec) as bus:
                await until(lambda: bus.health()["sweeps"] >= 2, what="a second sweep")
                await until(lambda: sim.bus.log and sim.bus.log[-1][0] in (2, 3), what="meter 2")
                mark = len(sim.bus.log)
                await bus.command(8, "trip")
                after = list(sim.bus.log)[mark:]
                first_write = after.index((8, 0x10))
                # At most the poll that was already on the wire went before the command.
                assert first_write <= 1, after
                assert true_state(sim, 8)["relay"] == "open"
                await until(lambda: any(a == 8 and r["relay"] == "open" for a, r in rec.readings),
                            what="the new relay state read back")  # fmt: skip

    run(scenario())


def test_command_jumps_between_the_requests_of_one_poll():
    async def scenario():
        # A DL/T 645 poll is seven reads; a command must not wait for all of them.
        async with line("dlt645", count=2) as (sim, client):
            sim.bus.global_faults["slow_ms"] = 30
            rec = Recorder()
            addrs = [address("dlt645", 1), address("dlt645", 2)]
            async with running_bus(client, "dlt645", addrs, rec) as bus:
                await until(lambda: len(sim.bus.log) >= 3, what="a poll under way")
                mark = len(sim.bus.log)
                await bus.command(addrs[1], "trip")
                after = list(sim.bus.log)[mark:]
                assert after.index((addrs[1], 0x1C)) <= 1, after

    run(scenario())


def test_lost_contact_is_declared_then_cleared_and_the_meter_set_up_again():
    async def scenario():
        async with line("acrel-ddsy1352", count=3) as (sim, client):
            rec = Recorder()
            async with running_bus(client, "acrel-ddsy1352", [1, 2, 3], rec, lost_after=2,
                                   backoff_max_sweeps=2) as bus:  # fmt: skip
                await until(lambda: rec.count(2) >= 1, what="a first reading of meter 2")
                assert true_state(sim, 2)["external_control"]
                meter = sim.bus.meter(2)
                meter.faults["dead"] = True
                await until(lambda: (2, False) in rec.contacts, what="lost contact")
                meter.run_state = 0  # a replacement meter, factory settings
                before = rec.count(2)
                meter.faults["dead"] = False
                await until(lambda: (2, True) in rec.contacts, what="contact restored")
                await until(lambda: rec.count(2) > before, what="readings again")
                assert rec.contacts == [(2, False), (2, True)]
                assert true_state(sim, 2)["external_control"], "setup must run again"
                assert bus.health()["lost"] == []

    run(scenario())


def test_corrupted_and_garbled_replies_are_retried_and_counted():
    async def scenario():
        async with line("acrel-ddsy1352", count=4) as (sim, client):
            sim.bus.global_faults.update(crc_error_rate=0.2, garbage_rate=0.2)
            rec = Recorder()
            async with running_bus(client, "acrel-ddsy1352", range(1, 5), rec, retries=3,
                                   lost_after=5) as bus:  # fmt: skip
                await until(lambda: all(rec.count(n) >= 10 for n in range(1, 5)),
                            what="10 readings per meter")  # fmt: skip
                health = bus.health()
                assert health["crc_errors"] > 0
                assert health["retries"] > 0
                assert health["lost"] == []
                assert rec.contacts == []
                assert sim.bus.stats["corrupted"] >= health["crc_errors"]

    run(scenario())


def test_read_now_goes_ahead_of_the_routine_sweep():
    async def scenario():
        async with line("acrel-ddsy1352", count=8) as (sim, client):
            sim.bus.global_faults["slow_ms"] = 20
            rec = Recorder()
            async with running_bus(client, "acrel-ddsy1352", range(1, 9), rec) as bus:
                # From the second sweep on a poll is one request (the first also sets meters up).
                await until(lambda: bus.health()["sweeps"] >= 2, what="a second sweep")
                await until(lambda: sim.bus.log and sim.bus.log[-1][0] == 2, what="meter 2")
                mark = len(sim.bus.log)
                bus.read_now(7)
                await until(lambda: len(sim.bus.log) >= mark + 3, what="three more requests")
                order = [a for a, _ in list(sim.bus.log)[mark:]]
                assert 7 in order[:2], order

    run(scenario())


def test_line_down_declares_lost_contact_and_a_restarted_server_is_reconnected():
    async def scenario():
        bus_state = SimBus("acrel-ddsy1352", 2, baud=115200)
        sim = await Simulator(bus_state, ["tcp://127.0.0.1:0"]).start()
        url = sim.url
        client = drivers.open_transport(url, model="acrel-ddsy1352", baud=115200)
        rec = Recorder()
        async with running_bus(client, "acrel-ddsy1352", [1, 2], rec, lost_after=2,
                               link_pause_ms=50) as bus:  # fmt: skip
            await until(lambda: rec.count(1) and rec.count(2), what="first readings")
            await sim.close()  # listener and live connection gone
            await until(lambda: {(1, False), (2, False)} <= set(rec.contacts), what="lost contact")
            assert bus.health()["link_errors"] > 0
            sim = await Simulator(bus_state, [url]).start()
            try:
                await until(lambda: {(1, True), (2, True)} <= set(rec.contacts), timeout_s=60,
                            what="contact restored")  # fmt: skip
            finally:
                await sim.close()

    run(scenario())


def test_health_is_plain_json_with_integers_only():
    async def scenario():
        async with line("acrel-ddsy1352", count=2) as (sim, client):
            sim.bus.meter(2).faults["dead"] = True
            rec = Recorder()
            async with running_bus(client, "acrel-ddsy1352", [1, 2], rec) as bus:
                await until(lambda: bus.health()["sweeps"] > 3, what="sweeps")
                health = json.loads(json.dumps(bus.health()))

                def walk(value: Any) -> None:
                    assert not isinstance(value, float), health
                    if isinstance(value, dict):
                        for v in value.values():
                            walk(v)
                    elif isinstance(value, list):
                        for v in value:
                            walk(v)

                walk(health)
                assert health["timeouts"] >= 1
                assert health["replies"] >= 3
                assert health["latency_ms"]["p50"] >= 0
                assert health["url"] == sim.url

    run(scenario())


def test_command_errors_are_raised_to_the_caller():
    async def scenario():
        async with line("acrel-ddsy1352", count=2) as (sim, client):
            sim.bus.meter(2).faults["dead"] = True
            rec = Recorder()
            async with running_bus(client, "acrel-ddsy1352", [1, 2], rec) as bus:
                with pytest.raises(ConfigError, match="not on bus"):
                    await bus.command(9, "trip")
                with pytest.raises(ConfigError, match="unknown relay operation"):
                    await bus.command(1, "explode")
                with pytest.raises(NoAnswerError, match="meter 2"):
                    await bus.command(2, "trip")
                assert bus.health()["command_failures"] == 1
                await bus.command(1, "trip")

    run(scenario())


def test_metering_instrument_bus_refuses_relay_commands_at_once():
    async def scenario():
        async with line("acrel-adl400", count=1) as (_, client):
            rec = Recorder()
            async with running_bus(client, "acrel-adl400", [1], rec) as bus:
                with pytest.raises(UnsupportedError):
                    await bus.command(1, "trip")

    run(scenario())


def test_callbacks_may_be_coroutines_and_their_errors_do_not_stop_the_bus():
    async def scenario():
        async with line("acrel-ddsy1352", count=2) as (_, client):
            seen: Counter[Any] = Counter()

            async def on_reading(addr: Any, reading: dict[str, Any]) -> None:
                await asyncio.sleep(0)
                seen[addr] += 1
                if addr == 1:
                    raise RuntimeError("agent bug")

            bus = Bus("t", client, drivers.get("acrel-ddsy1352"), [1, 2], on_reading,
                      lambda a, ok: None)  # fmt: skip
            task = asyncio.create_task(bus.run())
            await until(lambda: seen[1] >= 3 and seen[2] >= 3, what="readings")
            assert bus.health()["callback_errors"] >= 3
            await bus.stop()
            await task

    run(scenario())


def test_stopping_fails_pending_commands():
    async def scenario():
        async with line("acrel-ddsy1352", count=1) as (_, client):
            bus = Bus("t", client, drivers.get("acrel-ddsy1352"), [1], lambda a, r: None,
                      lambda a, ok: None)  # fmt: skip
            pending = asyncio.create_task(bus.command(1, "trip"))  # the bus is not running
            await asyncio.sleep(0)
            await bus.stop()
            with pytest.raises(BusError, match="stopped"):
                await pending

    run(scenario())


def test_bus_configuration_errors_name_the_problem():
    async def scenario():
        modbus = drivers.open_transport("tcp://127.0.0.1:1", model="acrel-ddsy1352")
        args = (lambda a, r: None, lambda a, ok: None)
        with pytest.raises(ConfigError, match="'speed'"):
            Bus("b", modbus, drivers.get("acrel-ddsy1352"), [1], *args, {"speed": 2})
        with pytest.raises(ConfigError, match="lost_after"):
            Bus("b", modbus, drivers.get("acrel-ddsy1352"), [1], *args, {"lost_after": 0})
        with pytest.raises(ConfigError, match="speaks dlt645"):
            Bus("b", modbus, drivers.get("dlt645"), ["000000000001"], *args)
        with pytest.raises(ConfigError, match="twice"):
            Bus("b", modbus, drivers.get("acrel-ddsy1352"), [1, "1"], *args)

    run(scenario())


def test_many_buses_run_in_parallel():
    async def scenario():
        async with (
            line("acrel-ddsy1352", count=2) as (_, c1),
            line("dlt645", count=2) as (
                _,
                c2,
            ),
        ):
            r1, r2 = Recorder(), Recorder()
            dl = [address("dlt645", 1), address("dlt645", 2)]
            async with (
                running_bus(c1, "acrel-ddsy1352", [1, 2], r1),
                running_bus(c2, "dlt645", dl, r2),
            ):
                await until(lambda: r1.count(2) >= 3 and r2.count(dl[1]) >= 3, what="both")

    run(scenario())


def test_the_sweep_interval_runs_on_the_bus_clock_and_readings_carry_its_time():
    async def scenario():
        async with line("acrel-ddsy1352", count=2) as (_, client):
            clock = FakeClock()
            rec = Recorder()
            bus = Bus("test", client, drivers.get("acrel-ddsy1352"), [1, 2], rec.on_reading,
                      rec.on_contact, {"sweep_interval_ms": 60_000}, clock=clock.time,
                      timer=clock.monotonic)  # fmt: skip
            task = asyncio.create_task(bus.run())
            try:
                await until(lambda: rec.count(2) == 1, what="the first sweep")
                await asyncio.sleep(0.3)  # real time passes; the bus's clock does not
                assert bus.health()["sweeps"] == 1
                clock.advance(60)
                bus.read_now(1)  # wakes the bus, whose clock now says the interval is over
                await until(lambda: bus.health()["sweeps"] == 2, what="the second sweep")
                await until(lambda: rec.count(2) == 2, what="meter 2 read again")
                assert {r["ts"] for _, r in rec.readings} <= {int(clock.time()) - 60,
                                                              int(clock.time())}  # fmt: skip
            finally:
                await bus.stop()
                await task

    run(scenario())
