"""The DL/T 645-2007 personality of simulated meters: answers exactly the data identifiers in
the codec's table (``shared.codec.dlt645.ITEMS``), the same table the driver reads.

11H reads (split into 12H follow-ups when ``max_data`` is set and an answer is longer), 14H
writes of the prepaid amounts and the clock (password checked), 1CH relay control (password
checked; ``refuse_relay`` answers ERR bit 2 like an ESAM meter; an expired command is refused),
13H read address and 08H broadcast time are handled by the server (they concern the line).
Unknown DIs get the "no data" error (ERR bit 1).
"""

from __future__ import annotations

import calendar
import time
from typing import Any

from edge.sim.meters import SimMeter
from edge.sim.modbus_slave import electrical
from shared.codec import dlt645 as codec
from shared.codec.errors import FrameError

ERR_OTHER = 0x01
ERR_NO_DATA = 0x02
ERR_AUTH = 0x04
WRITABLE = (0x04001001, 0x04001002, 0x04001003, 0x04001004, 0x04001005, codec.DI_DATETIME)
_DEFAULT_AMOUNTS = {
    0x04001001: 2000,
    0x04001002: 1000,
    0x04001003: 0,
    0x04001004: 999_999_99,
    0x04001005: 0,
}


def _local_tuple(ts: int, utc_offset_s: int) -> list[int]:
    t = time.gmtime(ts + utc_offset_s)
    return [t.tm_year, t.tm_mon, t.tm_mday, (t.tm_wday + 1) % 7, t.tm_hour, t.tm_min, t.tm_sec]


class Dlt645:
    """DL/T 645 meters (three-phase, direct connection)."""

    model = "dlt645"

    def __init__(self, password: str = "02000000", max_data: int = 0) -> None:
        self.password = bytes.fromhex(password)
        self.max_data = max_data
        self._pending: dict[tuple[str, int], list[bytes]] = {}

    def values(self, meter: SimMeter, di: int, now_ms: int, faults: dict[str, Any]) -> list[int]:
        """The integers ``di`` holds for this meter (in the item's unit)."""
        el = electrical(meter, now_ms, 3)
        bands = meter.band_energy_wh()
        total = meter.energy_wh() // 10
        band_values = [bands[b] // 10 for b in ("sharp", "peak", "flat", "valley")]
        status = 0
        if not meter.relay_closed:
            status |= codec.STATUS3_RELAY_OPEN
        if meter.commanded_open:
            status |= codec.STATUS3_RELAY_COMMAND_OPEN
        if meter.keep_power:
            status |= codec.STATUS3_KEEP_POWER
        power = max(-799_999, min(799_999, el["power_w"] * 10))
        table: dict[int, list[int]] = {
            0x00000000: [total],
            0x00010000: [total],
            0x00010100: band_values[0:1],
            0x00010200: band_values[1:2],
            0x00010300: band_values[2:3],
            0x00010400: band_values[3:4],
            codec.DI_ENERGY_BLOCK: [total, *band_values],
            0x02010100: el["voltages_dv"][0:1],
            0x02010200: el["voltages_dv"][1:2],
            0x02010300: el["voltages_dv"][2:3],
            codec.DI_VOLTAGES: el["voltages_dv"],
            0x02020100: el["currents_ma"][0:1],
            0x02020200: el["currents_ma"][1:2],
            0x02020300: el["currents_ma"][2:3],
            codec.DI_CURRENTS: el["currents_ma"],
            codec.DI_POWER: [power],
            codec.DI_FREQUENCY: [el["frequency_chz"]],
            codec.DI_REMAINING: [max(0, meter.remaining_fen)],
            0x00900201: [max(0, -meter.remaining_fen)],
            codec.DI_STATUS3: [status],
            codec.DI_DATETIME: _local_tuple(
                meter.clock_ms(now_ms, faults) // 1000, meter.utc_offset_s
            ),
            0x04000401: [int(meter.address)],
            0x04000402: [int(meter.address)],
        }
        for amount_di, default in _DEFAULT_AMOUNTS.items():
            raw = meter.written.get(amount_di)
            table[amount_di] = codec.decode_item(amount_di, raw) if raw else [default]
        return table[di]

    def handle(
        self, meter: SimMeter, frame: codec.Frame, now_ms: int, faults: dict[str, Any]
    ) -> codec.Frame | None:
        """The reply to ``frame`` addressed to ``meter`` (None: no reply)."""
        addr = meter.address
        fn = frame.function
        if fn == codec.C_READ and len(frame.data) >= 4:
            di = int.from_bytes(frame.data[:4], "little")
            if di not in codec.ITEMS:
                return codec.error_reply(addr, fn, ERR_NO_DATA)
            data = codec.encode_item(di, self.values(meter, di, now_ms, faults))
            if self.max_data and len(data) > self.max_data:
                parts = [data[i : i + self.max_data] for i in range(0, len(data), self.max_data)]
                self._pending[(addr, di)] = parts[1:]
                return codec.read_reply(addr, di, parts[0], more=True)
            return codec.read_reply(addr, di, data)
        if fn == codec.C_READ_FOLLOWUP and len(frame.data) == 5:
            di = int.from_bytes(frame.data[:4], "little")
            rest = self._pending.get((addr, di))
            if not rest:
                return codec.error_reply(addr, fn, ERR_NO_DATA)
            part = rest.pop(0)
            return codec.read_followup_reply(addr, di, part, frame.data[4], more=bool(rest))
        if fn == codec.C_WRITE and len(frame.data) >= 12:
            di = int.from_bytes(frame.data[:4], "little")
            if frame.data[4:8] != self.password:
                return codec.error_reply(addr, fn, ERR_AUTH)
            value = frame.data[12:]
            if di not in WRITABLE:
                return codec.error_reply(addr, fn, ERR_OTHER)
            try:
                fields = codec.decode_item(di, value)
            except FrameError:
                return codec.error_reply(addr, fn, ERR_OTHER)
            if di == codec.DI_DATETIME:
                year, mo, dd, _ww, hh, mi, ss = fields
                ts = _to_epoch(year, mo, dd, hh, mi, ss) - meter.utc_offset_s
                meter.set_clock(now_ms, ts * 1000)
            else:
                meter.written[di] = value
            return codec.ack_reply(addr, fn)
        if fn == codec.C_RELAY and len(frame.data) == 16:
            return self._relay(meter, frame, now_ms, faults)
        return codec.error_reply(addr, fn, ERR_OTHER)

    def _relay(
        self, meter: SimMeter, frame: codec.Frame, now_ms: int, faults: dict[str, Any]
    ) -> codec.Frame:
        addr, fn = meter.address, frame.function
        if faults.get("refuse_relay") or frame.data[0:4] != self.password:
            return codec.error_reply(addr, fn, ERR_AUTH)
        op = frame.data[8]
        try:
            expiry = codec.parse_datetime_bytes(frame.data[10:16])
        except FrameError:
            return codec.error_reply(addr, fn, ERR_OTHER)
        meter_ts = meter.clock_ms(now_ms, faults) // 1000 + meter.utc_offset_s
        if _to_epoch(*expiry) < meter_ts:
            return codec.error_reply(addr, fn, ERR_OTHER)  # the command has expired
        if op == codec.RELAY_TRIP:
            if meter.keep_power:
                return codec.error_reply(addr, fn, ERR_OTHER)  # keep power refuses a trip
            meter.commanded_open = True
        elif op in (codec.RELAY_DIRECT_CLOSE, codec.RELAY_CLOSE_ALLOWED):
            # "close allowed" waits for the tenant's button; the simulated tenant presses it.
            meter.commanded_open = False
        elif op == codec.RELAY_KEEP_POWER:
            meter.keep_power = True
            meter.commanded_open = False
        elif op == codec.RELAY_KEEP_POWER_CLEAR:
            meter.keep_power = False
        elif op not in (codec.RELAY_ALARM, codec.RELAY_ALARM_CLEAR):
            return codec.error_reply(addr, fn, ERR_OTHER)
        meter.update_relay(bool(faults.get("relay_stuck")))
        return codec.ack_reply(addr, fn)


def _to_epoch(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
