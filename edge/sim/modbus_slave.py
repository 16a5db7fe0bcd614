"""The Modbus personalities of simulated meters: they serve the drivers' own register maps
(``edge.drivers.acrel_ddsy1352.MAP``, ``edge.drivers.acrel_adl400.MAP``), so the simulator can
never drift from what the drivers read.

Values are kept primary-side in :class:`~edge.sim.meters.SimMeter`; the register image divides
by each field's factor and transformer ratio, as a real meter's registers would show them.
Reads must fall inside one range of the map (exception 2 otherwise); writes only where the map
says ``writable``; other function codes get exception 1.
"""

from __future__ import annotations

import time
from typing import Any

from edge.drivers import acrel_adl400, acrel_ddsy1352, regmap
from edge.sim.meters import SimMeter
from edge.sim.profile import mix
from shared.codec import modbus_rtu

PF_MILLI = 950


def electrical(meter: SimMeter, now_ms: int, phases: int) -> dict[str, Any]:
    """Primary-side instantaneous values consistent with the meter's power."""
    power = meter.power_w(now_ms)
    second = now_ms // 1000
    volts = [2200 + mix(meter.index, second, p) % 41 - 20 for p in range(phases)]
    per_phase = [power // phases] * phases
    per_phase[0] += power - sum(per_phase)
    currents = [
        abs(p) * 10_000_000 // (v * PF_MILLI) if v else 0
        for p, v in zip(per_phase, volts, strict=True)
    ]
    return {
        "power_w": power,
        "phase_power_w": per_phase,
        "voltages_dv": volts,
        "currents_ma": currents,
        "pf_milli": PF_MILLI,
        "frequency_chz": 5000 + mix(meter.index, second, 9) % 11 - 5,
    }


def _local_bytes(ts: int, utc_offset_s: int) -> tuple[int, ...]:
    t = time.gmtime(ts + utc_offset_s)
    return t.tm_year % 100, t.tm_mon, t.tm_mday, (t.tm_wday + 1) % 7, t.tm_hour, t.tm_min, t.tm_sec


def _raw(rm: regmap.RegisterMap, name: str, primary: list[int], pt: int, ct: int) -> list[int]:
    f = rm.field(name)
    div = f.factor * regmap.ratio_of(f, pt, ct)
    # Truncate toward zero, as a meter's register does.
    return [int(v / div) if v < 0 else v // div for v in primary]


class Personality:
    """Base: a model's register image and writes."""

    model = ""
    regmap: regmap.RegisterMap

    def image(self, meter: SimMeter, now_ms: int, faults: dict[str, Any]) -> dict[int, int]:
        raise NotImplementedError

    def write(self, meter: SimMeter, address: int, values: tuple[int, ...]) -> None:
        raise NotImplementedError

    def _ranges(self, which: str) -> tuple[tuple[int, int], ...]:
        rm = self.regmap
        return (*rm.blocks, *rm.readable) if which == "read" else rm.writable

    def handle(
        self, meter: SimMeter, request: modbus_rtu.Request, now_ms: int, faults: dict[str, Any]
    ) -> bytes:
        """The reply PDU to ``request``."""
        fn = request.function
        inside = any(
            start <= request.address and request.address + request.quantity <= start + count
            for start, count in self._ranges(
                "read" if fn in (modbus_rtu.FC_READ_HOLDING, modbus_rtu.FC_READ_INPUT) else "write"
            )
        )
        if fn in (modbus_rtu.FC_READ_HOLDING, modbus_rtu.FC_READ_INPUT):
            if not 1 <= request.quantity <= modbus_rtu.MAX_READ_COUNT or not inside:
                return modbus_rtu.exception_pdu(fn, modbus_rtu.ILLEGAL_DATA_ADDRESS)
            image = self.image(meter, now_ms, faults)
            values = [
                image.get(r, 0) for r in range(request.address, request.address + request.quantity)
            ]
            return modbus_rtu.read_reply_pdu(fn, values)
        if fn in (modbus_rtu.FC_WRITE_SINGLE, modbus_rtu.FC_WRITE_MULTIPLE):
            if not inside:
                return modbus_rtu.exception_pdu(fn, modbus_rtu.ILLEGAL_DATA_ADDRESS)
            self.write(meter, request.address, request.values)
            meter.update_relay(bool(faults.get("relay_stuck")))
            return modbus_rtu.write_reply_pdu(request)
        return modbus_rtu.exception_pdu(fn, modbus_rtu.ILLEGAL_FUNCTION)


class AcrelDdsy1352(Personality):
    """Acrel DDSY1352 (type 7, one phase) or DTSY1352 (type 5, three phases, default with a
    100/5 A CT so studio loads of tens of kW fit the 16-bit power register)."""

    model = "acrel-ddsy1352"
    regmap = acrel_ddsy1352.MAP

    def __init__(self, type_code: int = acrel_ddsy1352.TYPE_THREE_PHASE, pt: int = 1, ct: int = 20):
        self.type_code = type_code
        self.pt = pt
        self.ct = ct

    def image(self, meter: SimMeter, now_ms: int, faults: dict[str, Any]) -> dict[int, int]:
        rm, pt, ct = self.regmap, self.pt, self.ct
        n = acrel_ddsy1352.phases(self.type_code)
        el = electrical(meter, now_ms, n)
        bands = meter.band_energy_wh()
        status = 0
        if meter.relay_closed:
            for bit in acrel_ddsy1352.STATUS_RELAY_CLOSED[:n]:
                status |= bit
        if meter.remaining_fen <= 0:
            status |= acrel_ddsy1352.STATUS_ARREARS
        yy, mo, dd, ww, hh, mi, ss = _local_bytes(
            meter.clock_ms(now_ms, faults) // 1000, meter.utc_offset_s
        )
        pad = [0] * (3 - n)
        values = {
            "type_code": [self.type_code],
            "voltages_dv": _raw(rm, "voltages_dv", el["voltages_dv"] + pad, pt, ct),
            "currents_ma": _raw(rm, "currents_ma", el["currents_ma"] + pad, pt, ct),
            "phase_power_w": _raw(rm, "phase_power_w", el["phase_power_w"] + pad, pt, ct),
            "power_w": _raw(rm, "power_w", [el["power_w"]], pt, ct),
            "phase_pf_milli": [PF_MILLI] * n + pad,
            "pf_milli": [PF_MILLI],
            "pt_ratio": [pt],
            "ct_ratio": [ct],
            "energy_wh": _raw(rm, "energy_wh", [meter.energy_wh()], pt, ct),
            "remaining_micro_yuan": [max(0, meter.remaining_fen)],
            "purchase_count": [meter.purchase_count],
            "status": [status],
            "clock": [yy << 8 | mo, dd << 8 | ww, hh << 8 | mi, ss << 8],
            "run_state": [meter.run_state],
            "relay_force": list(meter.force),
        }
        for band in ("sharp", "peak", "flat", "valley"):
            values[f"{band}_energy_wh"] = _raw(rm, f"{band}_energy_wh", [bands[band]], pt, ct)
        return regmap.encode(rm, values)

    def write(self, meter: SimMeter, address: int, values: tuple[int, ...]) -> None:
        for offset, value in enumerate(values):
            reg = address + offset
            if reg == acrel_ddsy1352.REG_RUN_STATE:
                meter.run_state = value
            elif reg in (acrel_ddsy1352.REG_RELAY, acrel_ddsy1352.REG_RELAY + 1):
                meter.force[reg - acrel_ddsy1352.REG_RELAY] = value


class AcrelAdl400(Personality):
    """Acrel ADL400 / DTSD1352: a metering instrument behind a 200/5 A CT (secondary values)."""

    model = "acrel-adl400"
    regmap = acrel_adl400.MAP

    def __init__(self, pt: int = 1, ct: int = 40):
        self.pt = pt
        self.ct = ct

    def image(self, meter: SimMeter, now_ms: int, faults: dict[str, Any]) -> dict[int, int]:
        rm, pt, ct = self.regmap, self.pt, self.ct
        el = electrical(meter, now_ms, 3)
        bands = meter.band_energy_wh()
        energy = meter.energy_wh()
        values = {
            "energy_wh": _raw(rm, "energy_wh", [energy], pt, ct),
            "forward_energy_wh": _raw(rm, "forward_energy_wh", [energy], pt, ct),
            "reverse_energy_wh": [0],
            "voltages_dv": _raw(rm, "voltages_dv", el["voltages_dv"], pt, ct),
            "currents_ma": _raw(rm, "currents_ma", el["currents_ma"], pt, ct),
            "frequency_chz": [el["frequency_chz"]],
            "pt_ratio": [pt],
            "ct_ratio": [ct],
            "phase_power_w": _raw(rm, "phase_power_w", el["phase_power_w"], pt, ct),
            "power_w": _raw(rm, "power_w", [el["power_w"]], pt, ct),
            "pf_milli": [PF_MILLI] * 4,
        }
        for band in ("sharp", "peak", "flat", "valley"):
            values[f"{band}_energy_wh"] = _raw(rm, f"{band}_energy_wh", [bands[band]], pt, ct)
        return regmap.encode(rm, values)

    def write(self, meter: SimMeter, address: int, values: tuple[int, ...]) -> None:
        pass  # nothing is writable (the map has no writable ranges)
