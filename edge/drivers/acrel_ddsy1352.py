"""Acrel DDSY1352 (single-phase) / DTSY1352 (three-phase) prepaid meters, Modbus RTU FC03.

Map from protocols.md §1 (public third-party sources, not verified on a meter; the hil suite is
how to check it). One poll reads 48 registers at 0x0200. Relay: force control by FC16 at
0x0057 (trip [1, 1], close [1, 0], release [0, 0]). ``setup`` sets run-state 0x0022 bit 3
(external relay control) so the meter's own wallet can never trip a tenant the collector is
keeping powered.

Assumptions marked in the map: voltages, currents and power are taken as secondary-side values
(scaled by the PT/CT ratio registers, like the ADL400); energies as primary-side (the prepaid
wallet bills primary energy). The clock's and max demand's places in "the rest of the block" are
not public: they are placed at 0x0228.. (clock, binary bytes) and 0x022C.. (max demand).
"""

from __future__ import annotations

from typing import Any, ClassVar

from edge.drivers import regmap
from edge.drivers.base import BANDS, Driver, empty_reading, local_to_epoch
from edge.drivers.regmap import Field, RegisterMap

F = Field
MAP = RegisterMap(
    model="acrel-ddsy1352",
    blocks=((0x0200, 48),),
    fields=(
        F("type_code", 0x0200, "u16"),  # 7 = DDSY1352 (1 phase), 5 = DTSY1352 (3 phases)
        F("voltages_dv", 0x0201, "u16", 3, 1, "pt"),  # 0.1 V
        F("currents_ma", 0x0204, "u16", 3, 10, "ct"),  # 0.01 A
        F("phase_power_w", 0x0207, "s16", 3, 1, "ptct"),  # 0.001 kW
        F("power_w", 0x020A, "s16", 1, 1, "ptct"),
        F("phase_reactive_var", 0x020B, "s16", 3, 1, "ptct"),
        F("reactive_var", 0x020E, "s16", 1, 1, "ptct"),
        F("phase_pf_milli", 0x020F, "s16", 3),
        F("pf_milli", 0x0212, "s16"),
        F("pt_ratio", 0x0213, "u16"),
        F("ct_ratio", 0x0214, "u16"),
        F("energy_wh", 0x0215, "u32", 1, 10),  # 0.01 kWh, primary (assumed)
        F("sharp_energy_wh", 0x0217, "u32", 1, 10),
        F("peak_energy_wh", 0x0219, "u32", 1, 10),
        F("flat_energy_wh", 0x021B, "u32", 1, 10),
        F("valley_energy_wh", 0x021D, "u32", 1, 10),
        F("remaining_micro_yuan", 0x021F, "u32", 1, 10_000),  # 0.01 yuan (meter's own wallet)
        F("purchase_count", 0x0221, "u16"),
        F("status", 0x0224, "u16"),
        F("base_energy_wh", 0x0226, "u32", 1, 10),
        F("clock", 0x0228, "bytes", 4),  # YY MM | DD weekday | hh mm | ss 00 (position assumed)
        F("max_demand_w", 0x022C, "u32", 1, 1, "ptct"),  # (position assumed)
        F("max_demand_time", 0x022E, "bytes", 2),  # MM DD | hh mm (position assumed)
        F("run_state", 0x0022, "u16"),  # bit 3: external relay control
        F("relay_force", 0x0057, "u16", 2),  # [force on, trip]
    ),
    readable=((0x0022, 1), (0x0057, 2)),
    writable=((0x0022, 1), (0x0057, 2)),
)

TYPE_SINGLE_PHASE = 7
TYPE_THREE_PHASE = 5
RUN_STATE_EXTERNAL = 1 << 3
# Status word high byte: bit0 fault, bits 5/6/7 relay L1/L2/L3 closed. Low byte: alarms.
STATUS_FAULT = 1 << 8
STATUS_RELAY_CLOSED = (1 << 13, 1 << 14, 1 << 15)
STATUS_OVER_LIMIT = 1 << 4
STATUS_ARREARS = 1 << 5
STATUS_ALARM1 = 1 << 6
STATUS_ALARM2 = 1 << 7
RELAY_WRITES = {"trip": [1, 1], "close": [1, 0], "keep_power": [1, 0], "release": [0, 0]}
START, COUNT = MAP.blocks[0]
REG_RUN_STATE = MAP.field("run_state").register
REG_RELAY = MAP.field("relay_force").register


def phases(type_code: int) -> int:
    """1 for the single-phase DDSY1352, else 3."""
    return 1 if type_code == TYPE_SINGLE_PHASE else 3


def relay_state(status: int, n_phases: int) -> str:
    """ "closed" only when every phase's relay is closed (a half-open meter is open to us)."""
    closed = [bool(status & bit) for bit in STATUS_RELAY_CLOSED[:n_phases]]
    return "closed" if all(closed) else "open"


def clock_from_registers(words: list[int], utc_offset_s: int) -> int | None:
    """The meter clock (binary bytes YY MM DD weekday hh mm ss) as epoch seconds, or None."""
    yy, mo = words[0] >> 8, words[0] & 0xFF
    dd = words[1] >> 8
    hh, mm = words[2] >> 8, words[2] & 0xFF
    ss = words[3] >> 8
    return local_to_epoch((2000 + yy, mo, dd, hh, mm, ss), utc_offset_s)


class AcrelDdsy1352(Driver):
    """acrel-ddsy1352 (alias acrel-dtsy1352)."""

    model = "acrel-ddsy1352"
    aliases = ("acrel-dtsy1352",)
    protocol = "modbus"
    ops = ("trip", "close", "keep_power", "release")
    option_defaults: ClassVar[dict[str, Any]] = {"utc_offset_s": 8 * 3600}
    regmap = MAP
    reads_own_ratios = True

    def poll_exchanges(self) -> list[tuple[int, int]]:
        return [(8, 5 + 2 * COUNT)]

    async def setup(self, client: Any, address: Any, *, retries: int = 0) -> None:
        """Put the meter in external relay control (run-state 0x0022 bit 3)."""
        (state,) = await client.read_registers(address, REG_RUN_STATE, 1, retries=retries)
        if not state & RUN_STATE_EXTERNAL:
            await client.write_registers(
                address, REG_RUN_STATE, [state | RUN_STATE_EXTERNAL], retries=retries
            )

    async def read(
        self, client: Any, address: Any, *, now: int, retries: int = 0
    ) -> dict[str, Any]:
        words = await client.read_registers(address, START, COUNT, retries=retries)
        return self.reading_from_registers(
            dict(zip(range(START, START + COUNT), words, strict=True)), now
        )

    def reading_from_registers(self, registers: dict[int, int], now: int) -> dict[str, Any]:
        """A reading from the poll block's registers."""
        raw = regmap.decode(MAP, registers)
        pt = raw["pt_ratio"][0] or 1
        ct = raw["ct_ratio"][0] or 1
        n = phases(raw["type_code"][0])

        def val(name: str) -> list[int]:
            return regmap.scaled(MAP, raw, name, pt, ct)

        reading = empty_reading(now)
        reading["energy_wh"] = val("energy_wh")[0]
        reading["band_energy_wh"] = {band: val(f"{band}_energy_wh")[0] for band in BANDS}
        reading["power_w"] = val("power_w")[0]
        reading["voltages_dv"] = val("voltages_dv")[:n]
        reading["currents_ma"] = val("currents_ma")[:n]
        reading["relay"] = relay_state(raw["status"][0], n)
        reading["clock"] = clock_from_registers(raw["clock"], self.options["utc_offset_s"])
        return reading

    async def command(
        self, client: Any, address: Any, op: str, *, now: int, retries: int = 0
    ) -> None:
        self.check_op(op)
        await client.write_registers(address, REG_RELAY, RELAY_WRITES[op], retries=retries)
