"""The simulator's control channel: JSON lines over a loopback TCP port.

Each request is one JSON object on one line with a ``cmd``; each answer is one line,
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. ``address`` is a Modbus address
(int) or a DL/T 645 address (12 digits, or an int that is zero-padded); ``"all"`` means every
meter; leaving it out of ``fault`` / ``clear_faults`` means the line-wide defaults.

====================  ==========================================================================
cmd                   fields → answer
====================  ==========================================================================
``ping``              → ``model``, ``sim_ts``
``meters``            → ``model``, ``protocol``, ``addresses``
``state``             ``address`` → ``state``: energy_wh, band_energy_wh, power_w, load_w, relay,
                      clock, sim_ts, remaining_fen, external_control, force, keep_power, faults
``set_load``          ``address``, ``power_w`` (int W, or null to follow the profile again)
``fault``             ``address`` (optional), any of: dead, crc_error_rate, garbage_rate,
                      slow_ms, counter_reset_at, clock_drift_s_per_day, clock_offset_s,
                      relay_stuck, refuse_relay
``clear_faults``      ``address`` (optional; ``"all"`` clears the line-wide ones too)
``set_meter``         ``address``, any of: remaining_fen, energy_wh, purchase_count
``line``              any of: wire_timing (bool), turnaround_ms → the line settings
``stats``             → ``stats`` (requests, replies, silent, corrupted, garbage, broadcasts)
====================  ==========================================================================
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Callable
from typing import Any

from edge.drivers import parse_url
from edge.sim.meters import MJ_PER_WH, SimMeter, check_faults
from edge.sim.server import SimBus


def _targets(bus: SimBus, request: dict[str, Any], required: bool = True) -> list[SimMeter] | None:
    if "address" not in request:
        if required:
            raise ValueError('this command needs an address (or "all")')
        return None
    address = request["address"]
    if address == "all":
        return list(bus.meters.values())
    try:
        return [bus.meter(address)]
    except (KeyError, ValueError, TypeError):
        raise ValueError(f"no meter at address {address!r} on this line") from None


def _only(request: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(request) - allowed - {"cmd"})
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r} for {request['cmd']}")


def _ping(bus: SimBus, request: dict[str, Any], now: int) -> dict[str, Any]:
    _only(request, set())
    return {"model": bus.model, "sim_ts": now // 1000}


def _meters(bus: SimBus, request: dict[str, Any], now: int) -> dict[str, Any]:
    _only(request, set())
    return {"model": bus.model, "protocol": bus.protocol, "addresses": list(bus.meters)}


def _state(bus: SimBus, request: dict[str, Any], now: int) -> dict[str, Any]:
    _only(request, {"address"})
    meters = _targets(bus, request) or []
    states = [m.state(now, bus.faults_for(m)) for m in meters]
    return {"state": states[0]} if request["address"] != "all" else {"states": states}


def _set_load(bus: SimBus, request: dict[str, Any], now: int) -> dict[str, Any]:
    _only(request, {"address", "power_w"})
    power = request.get("power_w")
    if power is not None and (isinstance(power, bool) or not isinstance(power, int)):
        raise ValueError(f"power_w must be an integer number of watts or null (got {power!r})")
    for meter in _targets(bus, request) or []:
        meter.load_override_w = power
    return {}


def _fault(bus: SimBus, request: dict[str, Any], now: int) -> dict[str, Any]:
    fields = {k: v for k, v in request.items() if k not in ("cmd", "address")}
    values = check_faults(fields)
    meters = _targets(bus, request, required=False)
    if meters is None:
        bus.global_faults.update(values)
    else:
        for meter in meters:
            meter.faults.update(values)
    return {}


def _clear_faults(bus: SimBus, request: dict[str, Any], now: int) -> dict[str, Any]:
    _only(request, {"address"})
    meters = _targets(bus, request, required=False)
    if meters is None or request.get("address") == "all":
        bus.global_faults.clear()
    for meter in meters or []:
        meter.faults.clear()
    return {}


def _set_meter(bus: SimBus, request: dict[str, Any], now: int) -> dict[str, Any]:
    _only(request, {"address", "remaining_fen", "energy_wh", "purchase_count"})
    for meter in _targets(bus, request) or []:
        for key in ("remaining_fen", "energy_wh", "purchase_count"):
            if key not in request:
                continue
            value = request[key]
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{key} must be an integer (got {value!r})")
            if key == "energy_wh":
                meter.energy_mj = value * MJ_PER_WH
            else:
                setattr(meter, key, value)
        meter.update_relay(bool(bus.faults_for(meter)["relay_stuck"]))
    return {}


def _line(bus: SimBus, request: dict[str, Any], now: int) -> dict[str, Any]:
    _only(request, {"wire_timing", "turnaround_ms"})
    if "wire_timing" in request:
        bus.wire_timing = bool(request["wire_timing"])
    if "turnaround_ms" in request:
        bus.turnaround_ms = float(request["turnaround_ms"])
    return {"wire_timing": bus.wire_timing, "turnaround_ms": bus.turnaround_ms, "baud": bus.baud}


def _stats(bus: SimBus, request: dict[str, Any], now: int) -> dict[str, Any]:
    _only(request, set())
    return {"stats": dict(bus.stats)}


# cmd -> handler(bus, request, now_ms): the control channel's commands as data.
COMMANDS: dict[str, Callable[[SimBus, dict[str, Any], int], dict[str, Any]]] = {
    "ping": _ping,
    "meters": _meters,
    "state": _state,
    "set_load": _set_load,
    "fault": _fault,
    "clear_faults": _clear_faults,
    "set_meter": _set_meter,
    "line": _line,
    "stats": _stats,
}


def execute(bus: SimBus, request: dict[str, Any]) -> dict[str, Any]:
    """Run one control request against ``bus``; raises ValueError for a bad request."""
    cmd = request.get("cmd")
    now = bus.advance_all()
    handler = COMMANDS.get(cmd) if isinstance(cmd, str) else None
    if handler is None:
        raise ValueError(f"unknown command {cmd!r}")
    return handler(bus, request, now)


def answer_line(bus: SimBus, line: bytes) -> bytes:
    """One request line in, one answer line out (errors become ``ok: false``)."""
    try:
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("a request is a JSON object")
        result = {"ok": True, **execute(bus, request)}
    except (ValueError, TypeError) as exc:
        result = {"ok": False, "error": str(exc)}
    return json.dumps(result).encode() + b"\n"


async def serve_control(bus: SimBus, host: str, port: int) -> asyncio.Server:
    """The JSON-lines control server."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                if line.strip():
                    writer.write(answer_line(bus, line))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(client, host, port)


class ControlClient:
    """A blocking client for the control channel (tests, the demo, scripts)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        _, host, port = parse_url(url)
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.file = self.sock.makefile("rwb")

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send one request; return the answer; RuntimeError if it says ``ok: false``."""
        self.file.write(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        self.file.flush()
        line = self.file.readline()
        if not line:
            raise ConnectionError("the simulator closed the control channel")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise RuntimeError(f"simulator refused {cmd}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
