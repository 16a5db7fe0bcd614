"""Blueprint for a new meter model: copy this file to ``edge/drivers/<vendor>_<model>.py``.

Steps (each is checked by a test once done):

1. Put the register map in ``MAP`` as data (blocks polled, fields with their type, factor to a
   gridvend unit and PT/CT ratio) and cite where it comes from in the module docstring.
2. Fill in ``reading_from_registers``: energy in Wh, power in W, voltages in 0.1 V, currents in
   mA, primary side, relay "open"/"closed"/None, clock as epoch seconds or None.
3. If the model has a relay, list its ``ops`` and map each in ``command``.
4. Register it in ``edge/drivers/__init__.py`` (``_REGISTRY``).
5. Give the simulator a personality serving the same ``MAP`` (``edge/sim/modbus_slave.py``) and
   add the model to ``edge/sim/server.py:MODELS``, ``tests/bus/helpers.py:MODELS`` and
   ``hil/__main__.py:SIM_MODELS``: the catalogue tests and ``make hil`` then exercise it.

This module is not registered; it only has to import cleanly.
"""

from __future__ import annotations

from typing import Any, ClassVar

from edge.drivers import regmap
from edge.drivers.base import Driver, empty_reading
from edge.drivers.regmap import Field, RegisterMap

MAP = RegisterMap(
    model="vendor-model",
    blocks=((0x0000, 4),),
    fields=(
        Field("energy_wh", 0x0000, "u32", 1, 10, "ptct"),  # 0.01 kWh, secondary side
        Field("power_w", 0x0002, "s32", 1, 1, "ptct"),  # 0.001 kW
    ),
)


class VendorModel(Driver):
    """vendor-model."""

    model = "vendor-model"
    protocol = "modbus"
    ops = ()
    option_defaults: ClassVar[dict[str, Any]] = {}

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
        raw = regmap.decode(MAP, registers)
        reading = empty_reading(now)
        reading["energy_wh"] = regmap.scaled(MAP, raw, "energy_wh", 1, 1)[0]
        reading["power_w"] = regmap.scaled(MAP, raw, "power_w", 1, 1)[0]
        return reading
