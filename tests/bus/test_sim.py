"""The simulator: deterministic load profiles and exact energy, relays that drop load, faults
(dead meters truly silent, corruption, counter reset, clock drift, stuck relay), wire timing,
the JSON-lines control channel, the CLI as a subprocess, and interoperability with pymodbus."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

from edge import drivers
from edge.sim import SimProcess, SimThread, running
from edge.sim.meters import MJ_PER_WH, check_faults
from edge.sim.profile import MINUTE_MS, StudioProfile
from edge.sim.server import SimBus
from shared.codec import dlt645, modbus_rtu
from shared.codec.errors import ModbusExceptionError
from shared.codec.serial_line import wire_time_us
from tests.bus.helpers import line, run, true_state

START_TS = 1_767_225_600  # 2026-01-01 00:00 UTC


def test_profiles_are_deterministic_per_seed_and_studio_like():
    a, b, c = StudioProfile(7), StudioProfile(7), StudioProfile(8)
    minutes = range(29_453_760, 29_453_760 + 3 * 1440)  # three days
    loads = [a.load_w(4, m) for m in minutes]
    assert loads == [b.load_w(4, m) for m in minutes]
    assert loads != [c.load_w(4, m) for m in minutes]
    assert all(w >= 500 for w in loads)
    # Across a lot of meters, shooting sessions of tens of kW happen.
    peaks = [max(a.load_w(i, m) for m in minutes) for i in range(1, 13)]
    assert any(p >= 20_000 for p in peaks)
    assert max(peaks) <= 70_000


def test_energy_is_the_exact_integral_of_the_load_whatever_the_polling():
    bus1 = SimBus("acrel-ddsy1352", 1, seed=3, start_ts=START_TS)
    bus2 = SimBus("acrel-ddsy1352", 1, seed=3, start_ts=START_TS)
    m1, m2 = bus1.meter(1), bus2.meter(1)
    faults = bus1.faults_for(m1)
    start = m1.energy_mj
    end_ms = START_TS * 1000 + 5 * 3_600_000
    m1.advance(end_ms, faults)
    for t in range(START_TS * 1000, end_ms + 1, 7_777):  # a different sampling pattern
        m2.advance(t, faults)
    m2.advance(end_ms, faults)
    expected = sum(
        m1.profile.load_w(1, minute) * MINUTE_MS
        for minute in range(START_TS // 60, START_TS // 60 + 300)
    )
    assert m1.energy_mj - start == expected
    assert m2.energy_mj == m1.energy_mj
    assert sum(m1.band_mj) == m1.energy_mj


def test_open_relay_drops_the_load_and_stops_the_counter():
    bus = SimBus("dlt645", 1, start_ts=START_TS)
    meter = bus.meter(1)
    faults = bus.faults_for(meter)
    meter.commanded_open = True
    meter.update_relay(False)
    before = meter.energy_mj
    meter.advance(START_TS * 1000 + 3_600_000, faults)
    assert meter.energy_mj == before
    assert meter.power_w(START_TS * 1000) == 0


def test_counter_reset_and_clock_drift_faults():
    bus = SimBus("acrel-ddsy1352", 1, start_ts=START_TS)
    meter = bus.meter(1)
    faults = {**bus.faults_for(meter), "counter_reset_at": START_TS + 600,
              "clock_drift_s_per_day": 120}  # fmt: skip
    meter.advance((START_TS + 1200) * 1000, faults)
    # Only the ten minutes after the reset are on the counter.
    after = sum(meter.profile.load_w(1, m) for m in range(START_TS // 60 + 10, START_TS // 60 + 20))
    assert meter.energy_mj == after * MINUTE_MS
    day_later = (START_TS + 86_400) * 1000
    assert meter.clock_ms(day_later, faults) - day_later == 120_000


def test_stuck_relay_acknowledges_but_does_not_move():
    async def scenario():
        async with line("acrel-ddsy1352") as (sim, client):
            sim.bus.meter(1).faults["relay_stuck"] = True
            driver = drivers.get("acrel-ddsy1352")
            await driver.command(client, 1, "trip", now=0)
            assert (await driver.read(client, 1, now=0))["relay"] == "closed"
            assert true_state(sim, 1)["force"] == [1, 1]

    run(scenario())


def test_fault_settings_are_validated_by_name():
    assert check_faults({"dead": True, "crc_error_rate": 0.5}) == {
        "dead": True,
        "crc_error_rate": 0.5,
    }
    with pytest.raises(ValueError, match="'deadly'"):
        check_faults({"deadly": True})
    with pytest.raises(ValueError, match="probability"):
        check_faults({"garbage_rate": 2})
    with pytest.raises(ValueError, match="integer"):
        check_faults({"slow_ms": "fast"})


async def _exchange(port: int, frame: bytes, wait_s: float) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(frame)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(512), wait_s)
    except TimeoutError:
        return b""
    finally:
        writer.close()


def test_dead_and_absent_meters_are_truly_silent_while_live_ones_answer():
    async def scenario():
        async with running("acrel-ddsy1352", 3, baud=115200) as sim:
            sim.bus.meter(2).faults["dead"] = True
            _, _, port = drivers.parse_url(sim.url)
            request = modbus_rtu.read_registers_pdu(0x0200, 48)
            live = await _exchange(port, modbus_rtu.encode(1, request), 5)
            assert modbus_rtu.ReplyDecoder(1, request).feed(live) is not None
            # Not an exception reply (a pymodbus server would send exception 4): nothing.
            assert await _exchange(port, modbus_rtu.encode(2, request), 0.5) == b""
            assert await _exchange(port, modbus_rtu.encode(9, request), 0.5) == b""

    run(scenario())


def test_reads_outside_the_map_get_illegal_data_address():
    async def scenario():
        async with line("acrel-ddsy1352") as (_, client):
            with pytest.raises(ModbusExceptionError) as info:
                await client.read_registers(1, 0x0100, 4)
            assert info.value.code == modbus_rtu.ILLEGAL_DATA_ADDRESS
            with pytest.raises(ModbusExceptionError):
                await client.write_registers(1, 0x0200, [1])  # the poll block is read-only

    run(scenario())


def test_crc_corruption_at_rate_one_corrupts_every_reply():
    async def scenario():
        async with running("acrel-ddsy1352", 1, baud=115200) as sim:
            sim.bus.global_faults["crc_error_rate"] = 1.0
            _, _, port = drivers.parse_url(sim.url)
            request = modbus_rtu.read_registers_pdu(0x0200, 48)
            raw = await _exchange(port, modbus_rtu.encode(1, request), 5)
            decoder = modbus_rtu.ReplyDecoder(1, request)
            assert decoder.feed(raw) is None
            assert decoder.error is not None

    run(scenario())


def test_wire_timing_delays_a_reply_by_at_least_its_wire_time():
    async def scenario():
        async with running("acrel-ddsy1352", 1, baud=2400, wire_timing=True,
                           turnaround_ms=20) as sim:  # fmt: skip
            _, _, port = drivers.parse_url(sim.url)
            request = modbus_rtu.encode(1, modbus_rtu.read_registers_pdu(0x0200, 48))
            started = time.monotonic()
            raw = await _exchange(port, request, 10)
            elapsed_us = (time.monotonic() - started) * 1_000_000
            assert len(raw) == 101
            assert elapsed_us >= wire_time_us(109, 2400, 10) + 20_000

    run(scenario())


def test_dlt645_read_address_answers_only_when_one_meter_is_on_the_line():
    async def scenario():
        for count, expect_reply in ((1, True), (2, False)):
            async with running("dlt645", count, baud=115200) as sim:
                _, _, port = drivers.parse_url(sim.url)
                raw = await _exchange(port, dlt645.encode(dlt645.read_address_request()), 0.5)
                frames = dlt645.Decoder().feed(raw)
                assert bool(frames) == expect_reply
                if frames:
                    assert frames[0].data == dlt645.encode_address("000000000001")

    run(scenario())


def test_control_channel_changes_loads_and_faults_and_reports_true_state():
    with SimThread("acrel-ddsy1352", 3, baud=115200) as sim, sim.control() as ctl:
        assert ctl.call("meters")["addresses"] == [1, 2, 3]
        ctl.call("set_load", address=2, power_w=33_000)
        state = ctl.call("state", address=2)["state"]
        assert state["power_w"] == 33_000
        assert state["relay"] == "closed"
        ctl.call("fault", address=2, dead=True, slow_ms=50)
        ctl.call("fault", crc_error_rate=0.1)
        assert ctl.call("state", address=2)["state"]["faults"] == {
            "dead": True,
            "slow_ms": 50,
            "crc_error_rate": 0.1,
        }
        ctl.call("clear_faults", address="all")
        assert ctl.call("state", address=2)["state"]["faults"] == {}
        ctl.call("set_meter", address=1, remaining_fen=0)
        assert ctl.call("state", address=1)["state"]["relay"] == "open"
        assert len(ctl.call("state", address="all")["states"]) == 3
        for bad, message in (
            ({"cmd": "fault", "address": 1, "deadish": True}, "'deadish'"),
            ({"cmd": "state", "address": 77}, "no meter at address 77"),
            ({"cmd": "fly"}, "unknown command 'fly'"),
            ({"cmd": "set_load", "address": 1, "power_w": "lots"}, "power_w"),
        ):
            with pytest.raises(RuntimeError, match=message):
                ctl.call(bad.pop("cmd"), **bad)
        assert ctl.call("stats")["stats"]["requests"] == 0


def test_pymodbus_reads_the_simulator_over_rtu_over_tcp_and_modbus_tcp():
    async def scenario():
        async with running("acrel-ddsy1352", 2, baud=115200,
                           listen=["tcp://127.0.0.1:0", "modbus-tcp://127.0.0.1:0"]) as sim:  # fmt: skip
            for url, framer in zip(sim.urls, (FramerType.RTU, FramerType.SOCKET), strict=True):
                _, host, port = drivers.parse_url(url)
                client = AsyncModbusTcpClient(host, port=port, framer=framer, timeout=5)
                await client.connect()
                try:
                    reply = await client.read_holding_registers(0x0200, count=48, device_id=2)
                    assert not reply.isError()
                    assert reply.registers[0] == 5
                    reply = await client.write_registers(0x0057, [1, 1], device_id=2)
                    assert not reply.isError()
                finally:
                    client.close()
            assert true_state(sim, 2)["relay"] == "open"

    run(scenario())


def test_cli_serves_until_terminated_and_prints_where():
    args = ["--model", "dlt645", "--count", "2", "--listen", "tcp://127.0.0.1:0", "--seed", "5",
            "--dead", "2", "--crc-error-rate", "0.01"]  # fmt: skip
    with SimProcess(args) as sim, sim.control() as ctl:
        assert sim.info["addresses"] == ["000000000001", "000000000002"]
        assert sim.info["parity"] == "E"
        assert sim.info["baud"] == 2400
        state = ctl.call("state", address=2)["state"]
        assert state["faults"] == {"dead": True, "crc_error_rate": 0.01}
        with socket.create_connection(("127.0.0.1", int(sim.url.rsplit(":", 1)[1])), timeout=5):
            pass


def test_cli_refuses_bad_arguments_with_one_clear_line():
    result = subprocess.run(
        [sys.executable, "-m", "edge.sim.cli", "--model", "acrel-ddsy1352"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "give --listen" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "edge.sim.cli", "--model", "dlt645", "--listen",
         "modbus-tcp://127.0.0.1:0"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "Modbus TCP" in result.stderr


def test_set_meter_energy_moves_the_counter():
    with SimThread("acrel-ddsy1352", 1, baud=115200) as sim, sim.control() as ctl:
        ctl.call("set_meter", address=1, energy_wh=42)
        assert 42 <= ctl.call("state", address=1)["state"]["energy_wh"] < 42 + 100
        assert sim.call(lambda bus: bus.meter(1).energy_mj) >= 42 * MJ_PER_WH
