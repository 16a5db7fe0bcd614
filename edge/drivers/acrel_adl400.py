"""Acrel ADL400 / DTSD1352 multifunction meters (FC03): plain metering instruments (F32).

Map from protocols.md §2 (public sources, unverified on a meter). The registers are not
contiguous, so a poll is several requests (``MAP.blocks``). Energies, voltages, currents and
power are secondary-side values: a reading multiplies them by the PT and CT ratios the meter
reports at 0x008D/0x008E, so it is primary-side like every other reading. No relay, no clock.

``energy_wh`` is the combined active total (0x0000) and the bands its tariffs 1..4
(sharp/peak/flat/valley), so the bands add up to the total.
"""

from __future__ import annotations

from typing import Any

from edge.drivers import regmap
from edge.drivers.base import BANDS, Driver, empty_reading
from edge.drivers.regmap import Field, RegisterMap

F = Field
MAP = RegisterMap(
    model="acrel-adl400",
    blocks=((0x0000, 22), (0x0061, 23), (0x008D, 2), (0x0164, 8), (0x017C, 4)),
    fields=(
        F("energy_wh", 0x0000, "u32", 1, 10, "ptct"),  # 0.01 kWh, secondary
        F("sharp_energy_wh", 0x0002, "u32", 1, 10, "ptct"),
        F("peak_energy_wh", 0x0004, "u32", 1, 10, "ptct"),
        F("flat_energy_wh", 0x0006, "u32", 1, 10, "ptct"),
        F("valley_energy_wh", 0x0008, "u32", 1, 10, "ptct"),
        F("forward_energy_wh", 0x000A, "u32", 1, 10, "ptct"),
        F("reverse_energy_wh", 0x0014, "u32", 1, 10, "ptct"),
        F("voltages_dv", 0x0061, "u16", 3, 1, "pt"),  # 0.1 V
        F("currents_ma", 0x0064, "u16", 3, 10, "ct"),  # 0.01 A
        F("frequency_chz", 0x0077, "u16"),  # 0.01 Hz
        F("pt_ratio", 0x008D, "u16"),
        F("ct_ratio", 0x008E, "u16"),
        F("phase_power_w", 0x0164, "s32", 3, 1, "ptct"),  # 0.001 kW
        F("power_w", 0x016A, "s32", 1, 1, "ptct"),
        F("pf_milli", 0x017C, "s16", 4),  # a, b, c, total
    ),
)


class AcrelAdl400(Driver):
    """acrel-adl400 (alias acrel-dtsd1352)."""

    model = "acrel-adl400"
    aliases = ("acrel-dtsd1352",)
    protocol = "modbus"
    ops = ()
    regmap = MAP
    reads_own_ratios = True

    def poll_exchanges(self) -> list[tuple[int, int]]:
        return [(8, 5 + 2 * count) for _, count in MAP.blocks]

    async def read(
        self, client: Any, address: Any, *, now: int, retries: int = 0
    ) -> dict[str, Any]:
        registers: dict[int, int] = {}
        for start, count in MAP.blocks:
            words = await client.read_registers(address, start, count, retries=retries)
            registers.update(zip(range(start, start + count), words, strict=True))
        return self.reading_from_registers(registers, now)

    def reading_from_registers(self, registers: dict[int, int], now: int) -> dict[str, Any]:
        """A reading from all the poll blocks' registers."""
        raw = regmap.decode(MAP, registers)
        pt = raw["pt_ratio"][0] or 1
        ct = raw["ct_ratio"][0] or 1

        def val(name: str) -> list[int]:
            return regmap.scaled(MAP, raw, name, pt, ct)

        reading = empty_reading(now)
        reading["energy_wh"] = val("energy_wh")[0]
        reading["band_energy_wh"] = {band: val(f"{band}_energy_wh")[0] for band in BANDS}
        reading["power_w"] = val("power_w")[0]
        reading["voltages_dv"] = val("voltages_dv")
        reading["currents_ma"] = val("currents_ma")
        reading["frequency_chz"] = val("frequency_chz")[0]
        return reading
