"""The driver catalogue against the simulator: every model over every transport it has (RTU
over TCP, a real socat pty pair, Modbus TCP), readings checked against the meters' true state,
relay operations checked on the simulated relay."""

from __future__ import annotations

import asyncio
import time

import pytest

from edge import drivers
from edge.drivers import regmap
from edge.drivers._blueprint import MAP as BLUEPRINT_MAP
from edge.drivers.acrel_adl400 import MAP as ADL400_MAP
from edge.drivers.acrel_ddsy1352 import MAP as DDSY_MAP
from edge.drivers.base import READING_KEYS
from edge.errors import ConfigError, LinkError, NoAnswerError, UnsupportedError
from shared.codec.errors import Dlt645UnauthorizedError
from tests.bus.helpers import LINES, address, line, run, true_state

# Register resolution of each model's energy as the simulator sets it up: Acrel DTSY1352 keeps
# energy primary-side in 10 Wh steps; the ADL400 sits behind a 200/5 A CT (40 × 10 Wh).
ENERGY_STEP_WH = {"acrel-ddsy1352": 10, "acrel-adl400": 400, "dlt645": 10}
POWER_STEP_W = {"acrel-ddsy1352": 20, "acrel-adl400": 40, "dlt645": 1}


@pytest.mark.parametrize(("model", "transport"), LINES)
def test_reading_matches_the_meters_true_state(model, transport):
    async def scenario():
        async with line(model, transport) as (sim, client):
            driver = drivers.get(model)
            addr = address(model, 2)
            sim.bus.meter(addr).load_override_w = 12_345
            reading = await driver.read(client, addr, now=int(time.time()), retries=1)
            truth = true_state(sim, addr)
            assert set(reading) == set(READING_KEYS)
            step = ENERGY_STEP_WH[model]
            assert truth["energy_wh"] - step < reading["energy_wh"] <= truth["energy_wh"]
            assert abs(reading["power_w"] - 12_345) < POWER_STEP_W[model]
            assert sum(reading["band_energy_wh"].values()) <= reading["energy_wh"] + 4 * step
            assert len(reading["voltages_dv"]) == 3
            assert len(reading["currents_ma"]) == 3
            assert all(2150 < v < 2250 for v in reading["voltages_dv"])
            if model == "acrel-adl400":
                assert reading["relay"] is None
                assert reading["clock"] is None
                assert 4990 <= reading["frequency_chz"] <= 5010
            else:
                assert reading["relay"] == "closed"
                assert abs(reading["clock"] - truth["clock"]) <= 2

    run(scenario())


@pytest.mark.parametrize(("model", "transport"), [(m, t) for m, t in LINES if m != "acrel-adl400"])
def test_relay_operations_move_the_simulated_relay(model, transport):
    async def scenario():
        async with line(model, transport) as (sim, client):
            driver = drivers.get(model)
            addr = address(model, 1)
            await driver.setup(client, addr, retries=1)
            for op, want in (("trip", "open"), ("close", "closed"), ("trip", "open"),
                             ("keep_power", "closed"), ("release", "closed")):  # fmt: skip
                await driver.command(client, addr, op, now=int(time.time()), retries=1)
                reading = await driver.read(client, addr, now=int(time.time()), retries=1)
                assert true_state(sim, addr)["relay"] == want, op
                assert reading["relay"] == want, op
                if want == "open":
                    assert reading["power_w"] == 0

    run(scenario())


def test_acrel_setup_takes_relay_control_away_from_the_meters_own_wallet():
    async def scenario():
        async with line("acrel-ddsy1352") as (sim, client):
            driver = drivers.get("acrel-ddsy1352")
            sim.bus.meter(1).remaining_fen = 0  # the meter's own wallet is empty
            reading = await driver.read(client, 1, now=int(time.time()))
            assert reading["relay"] == "open"  # internal control: it tripped itself
            await driver.setup(client, 1)
            reading = await driver.read(client, 1, now=int(time.time()))
            assert true_state(sim, 1)["external_control"] is True
            assert reading["relay"] == "closed"

    run(scenario())


def test_metering_instrument_refuses_relay_commands():
    async def scenario():
        async with line("acrel-adl400") as (_, client):
            driver = drivers.get("acrel-adl400")
            with pytest.raises(UnsupportedError, match="no relay"):
                await driver.command(client, 1, "trip", now=int(time.time()))

    run(scenario())


def test_adl400_reading_is_primary_side():
    async def scenario():
        async with line("acrel-adl400") as (sim, client):
            sim.bus.meter(1).load_override_w = 40_000
            reading = await drivers.get("acrel-adl400").read(client, 1, now=int(time.time()))
            # The meter's registers hold 1/40 of it (CT 200/5): the reading must not.
            assert abs(reading["power_w"] - 40_000) < 40
            assert reading["energy_wh"] > 1_000_000 // 40

    run(scenario())


def test_dlt645_relay_refusal_for_authorisation_is_a_clear_error():
    async def scenario():
        async with line("dlt645") as (sim, client):
            sim.bus.meter(1).faults["refuse_relay"] = True
            with pytest.raises(Dlt645UnauthorizedError, match="ESAM"):
                await drivers.get("dlt645").command(
                    client, "000000000001", "trip", now=int(time.time())
                )
            assert true_state(sim, "000000000001")["relay"] == "closed"

    run(scenario())


def test_dlt645_wrong_password_is_refused_as_unauthorised():
    async def scenario():
        async with line("dlt645") as (_, client):
            driver = drivers.get("dlt645", password="04123456")
            with pytest.raises(Dlt645UnauthorizedError):
                await driver.command(client, "000000000001", "trip", now=int(time.time()))

    run(scenario())


def test_dlt645_clock_is_set_by_broadcast():
    async def scenario():
        async with line("dlt645", count=2) as (_, client):
            driver = drivers.get("dlt645")
            target = int(time.time()) + 86_400
            await driver.sync_clock(client, target)
            for n in (1, 2):
                reading = await driver.read(client, address("dlt645", n), now=int(time.time()))
                assert abs(reading["clock"] - target) <= 2

    run(scenario())


def test_dlt645_long_answers_arrive_through_follow_up_frames():
    async def scenario():
        async with line("dlt645", model_options={"max_data": 6}) as (sim, client):
            reading = await drivers.get("dlt645").read(client, "000000000001", now=int(time.time()))
            truth = true_state(sim, "000000000001")
            assert truth["energy_wh"] - 10 < reading["energy_wh"] <= truth["energy_wh"]
            assert client.stats["requests"] > 7  # the 20-byte energy block took 12H frames

    run(scenario())


def test_absent_meter_is_a_no_answer_error_naming_meter_line_and_timeout():
    async def scenario():
        async with line("acrel-ddsy1352") as (sim, client):
            with pytest.raises(NoAnswerError) as info:
                await drivers.get("acrel-ddsy1352").read(client, 9, now=0)
            text = str(info.value)
            assert text.startswith(f"meter 9 on {sim.url} did not answer within ")
            assert text.endswith(" ms")

    run(scenario())


def test_driver_options_models_and_urls_are_validated_by_name():
    with pytest.raises(ConfigError, match="'colour'"):
        drivers.get("dlt645", colour="red")
    with pytest.raises(ConfigError, match="acrel-ddsy1352"):
        drivers.get("acme-9000")
    with pytest.raises(ConfigError, match="password"):
        drivers.get("dlt645", password="zz")
    with pytest.raises(ConfigError, match="scheme"):
        drivers.open_transport("udp://1.2.3.4:5", model="dlt645")
    with pytest.raises(ConfigError, match="host:port"):
        drivers.open_transport("tcp://nohost", model="acrel-adl400")
    with pytest.raises(ConfigError, match="Modbus TCP"):
        drivers.open_transport("modbus-tcp://127.0.0.1:502", model="dlt645")
    with pytest.raises(ConfigError, match=r"1\.\.247"):
        drivers.get("acrel-ddsy1352").parse_address(300)
    assert drivers.get("acrel-dtsy1352").model == "acrel-ddsy1352"
    assert drivers.get("acrel-dtsd1352").model == "acrel-adl400"


def test_missing_serial_device_is_a_link_error():
    async def scenario():
        client = drivers.open_transport("/nonexistent/ttyX", model="acrel-ddsy1352")
        with pytest.raises(LinkError, match="cannot open /nonexistent/ttyX"):
            await drivers.get("acrel-ddsy1352").read(client, 1, now=0)
        # Failed recently: the next attempt fails at once without touching the device.
        with pytest.raises(LinkError, match="next attempt"):
            await drivers.get("acrel-ddsy1352").read(client, 1, now=0)

    run(scenario())


@pytest.mark.parametrize("regmap_", [DDSY_MAP, ADL400_MAP, BLUEPRINT_MAP], ids=lambda m: m.model)
def test_register_maps_are_consistent(regmap_):
    regmap.check(regmap_)
    # Every polled field decodes from the poll blocks alone.
    polled = {r for start, count in regmap_.blocks for r in range(start, start + count)}
    decoded = regmap.decode(regmap_, dict.fromkeys(polled, 1))
    for f in regmap_.fields:
        inside = all(f.register + i in polled for i in range(f.registers))
        assert (f.name in decoded) == inside, f.name


def test_single_phase_ddsy1352_reports_one_phase_and_its_relay():
    async def scenario():
        async with line("acrel-ddsy1352", model_options={"type_code": 7, "ct": 1}) as (
            sim,
            client,
        ):
            driver = drivers.get("acrel-ddsy1352")
            sim.bus.meter(1).load_override_w = 5_000
            reading = await driver.read(client, 1, now=0)
            assert len(reading["voltages_dv"]) == 1
            assert len(reading["currents_ma"]) == 1
            assert reading["power_w"] == 5_000
            assert reading["relay"] == "closed"
            assert abs(reading["currents_ma"][0] - 5_000 * 10_000_000 // (2200 * 950)) < 300
            await driver.command(client, 1, "trip", now=0)
            assert (await driver.read(client, 1, now=0))["relay"] == "open"

    run(scenario())


def test_sped_up_simulation_keeps_meter_clocks_real_so_dlt645_relay_commands_do_not_expire():
    # --speed accelerates consumption, not meter clocks: DL/T 645 relay commands carry an expiry
    # in the collector's (real) time, which a meter clock racing ahead would take as past.
    async def scenario():
        async with line("dlt645", speed=3600) as (sim, client):
            driver = drivers.get("dlt645")
            addr = address("dlt645", 1)
            first = await driver.read(client, addr, now=int(time.time()), retries=1)
            await asyncio.sleep(1.5)  # 1.5 real seconds: an hour and a half of simulated time
            await driver.command(client, addr, "trip", now=int(time.time()), retries=1)
            reading = await driver.read(client, addr, now=int(time.time()), retries=1)
            assert true_state(sim, addr)["relay"] == "open"
            assert abs(reading["clock"] - time.time()) < 30
            assert reading["energy_wh"] > first["energy_wh"]  # consumption ran sped up

    run(scenario())
