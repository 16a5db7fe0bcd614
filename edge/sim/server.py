"""The simulated line: a bus of meters of one model, served over TCP (RTU over TCP, Modbus TCP,
DL/T 645 over TCP) or a serial device, with wire timing and faults.

The simulator frames RTU itself (not pymodbus' server) so that a dead meter is truly silent, a
reply can be delayed by its exact wire time, and replies can be corrupted on purpose.

Wire timing (``wire_timing=True``): a reply leaves only after the time the request and the reply
would take on a real line at the configured baud and framing, plus the slave's t3.5 and its
turnaround: ``wire(request) + t3.5 + turnaround + wire(reply)`` after the request arrived (the
master adds its own t3.5 before the next request). Without wire timing a reply leaves at once
(plus a meter's ``slow_ms`` fault). Each connection is served in order, like a half-duplex line.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections import deque
from typing import Any

import serial_asyncio

from edge.drivers.link import device_parity
from edge.sim import dlt645_slave, modbus_slave
from edge.sim.meters import FAULTS, SimMeter
from edge.sim.profile import StudioProfile
from shared.codec import dlt645, modbus_rtu, modbus_tcp
from shared.codec.errors import ChecksumError, FrameError
from shared.codec.serial_line import bits_per_char, t35_us, wire_time_us

MODELS: dict[str, tuple[str, type]] = {
    "acrel-ddsy1352": ("modbus", modbus_slave.AcrelDdsy1352),
    "acrel-dtsy1352": ("modbus", modbus_slave.AcrelDdsy1352),
    "acrel-adl400": ("modbus", modbus_slave.AcrelAdl400),
    "acrel-dtsd1352": ("modbus", modbus_slave.AcrelAdl400),
    "dlt645": ("dlt645", dlt645_slave.Dlt645),
}
RTU_IDLE_S = 0.05  # silence after which a partial RTU request is dropped


class SimClock:
    """Simulated epoch milliseconds: ``start_ts`` plus real elapsed time × ``speed``."""

    def __init__(self, start_ts: int | None = None, speed: float = 1.0) -> None:
        self.start_ms = int(time.time() * 1000) if start_ts is None else int(start_ts) * 1000
        self.speed = speed
        self._t0 = time.monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self._t0) * 1000 * self.speed)


class SimBus:
    """The meters on one simulated line, their faults, and the line's timing.

    Modbus meters answer at addresses ``first_address .. first_address + count - 1``; DL/T 645
    meter *i* (counting from ``first_address``) has the 12-digit address ``f"{i:012d}"``
    (meter 1 is ``000000000001``)."""

    def __init__(
        self,
        model: str,
        count: int = 32,
        *,
        seed: int = 1,
        speed: float = 1.0,
        start_ts: int | None = None,
        first_address: int = 1,
        utc_offset_s: int = 8 * 3600,
        baud: int | None = None,
        parity: str | None = None,
        stop_bits: int = 1,
        wire_timing: bool = False,
        turnaround_ms: float = 20.0,
        model_options: dict[str, Any] | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown model {model!r} (known: {', '.join(sorted(MODELS))})")
        self.model = model
        self.protocol, cls = MODELS[model]
        self.personality: Any = cls(**(model_options or {}))
        if not 1 <= count <= 247 or not 1 <= first_address <= 248 - count:
            raise ValueError(f"{count} meters from address {first_address} do not fit 1..247")
        self.baud = baud or (2400 if self.protocol == "dlt645" else 9600)
        self.parity = (parity or ("E" if self.protocol == "dlt645" else "N")).upper()
        self.stop_bits = stop_bits
        self.bits = bits_per_char(self.parity, stop_bits)
        self.wire_timing = wire_timing
        self.turnaround_ms = turnaround_ms
        self.clock = SimClock(start_ts, speed)
        self.seed = seed
        self.rng = random.Random(seed)
        profile = StudioProfile(seed, utc_offset_s)
        start_ms = self.clock.now_ms()
        self.meters: dict[Any, SimMeter] = {}
        for i in range(first_address, first_address + count):
            address: Any = f"{i:012d}" if self.protocol == "dlt645" else i
            self.meters[address] = SimMeter(
                i, address, profile, start_ms, seed, utc_offset_s, speed=speed
            )
        self.global_faults: dict[str, Any] = {}
        self.stats = dict.fromkeys(
            ("requests", "replies", "silent", "corrupted", "garbage", "broadcasts"), 0
        )
        # (address, function) of every request heard, newest last: tests check the order.
        self.log: deque[tuple[Any, int]] = deque(maxlen=10_000)
        self.connections: set[LineProtocol] = set()  # live lines, closed when the server stops

    # --- state ------------------------------------------------------------------------------

    def faults_for(self, meter: SimMeter) -> dict[str, Any]:
        return {**FAULTS, **self.global_faults, **meter.faults}

    def advance_all(self) -> int:
        now = self.clock.now_ms()
        for meter in self.meters.values():
            meter.advance(now, self.faults_for(meter))
        return now

    def meter(self, address: Any) -> SimMeter:
        """The meter at ``address`` (an int, or a DL/T 645 address string / int); KeyError."""
        if self.protocol == "dlt645":
            key: Any = dlt645.normalise_address(address)
        else:
            key = int(address)
        return self.meters[key]

    # --- timing and faults --------------------------------------------------------------------

    def reply_delay_s(self, request_bytes: int, reply_bytes: int, faults: dict[str, Any]) -> float:
        delay_us = int(faults.get("slow_ms") or 0) * 1000
        if self.wire_timing:
            delay_us += wire_time_us(request_bytes + reply_bytes, self.baud, self.bits)
            delay_us += int(self.turnaround_ms * 1000)
            if self.protocol == "modbus":
                delay_us += t35_us(self.baud, self.bits)
        return delay_us / 1_000_000

    def damage(self, frame: bytes, faults: dict[str, Any]) -> bytes:
        """Apply CRC corruption and garbage faults to an outgoing frame."""
        if faults["crc_error_rate"] and self.rng.random() < faults["crc_error_rate"]:
            self.stats["corrupted"] += 1
            frame = frame[:-2] + bytes([frame[-2] ^ 0x5A]) + frame[-1:]
        if faults["garbage_rate"] and self.rng.random() < faults["garbage_rate"]:
            self.stats["garbage"] += 1
            junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 8)))
            frame = junk + frame if self.rng.random() < 0.5 else frame + junk
        return frame

    # --- requests -------------------------------------------------------------------------

    def modbus(self, device_id: int, pdu: bytes) -> tuple[bytes | None, dict[str, Any]]:
        """(reply PDU or None for silence, the meter's faults)."""
        self.stats["requests"] += 1
        self.log.append((device_id, pdu[0]))
        if device_id == 0:
            self.stats["broadcasts"] += 1
            now = self.advance_all()
            for each in self.meters.values():
                self._modbus_one(each, pdu, now)
            return None, dict(FAULTS)
        meter = self.meters.get(device_id)
        if meter is None:
            self.stats["silent"] += 1
            return None, dict(FAULTS)
        faults = self.faults_for(meter)
        if faults["dead"]:
            self.stats["silent"] += 1
            return None, faults
        now = self.clock.now_ms()
        meter.advance(now, faults)
        return self._modbus_one(meter, pdu, now), faults

    def _modbus_one(self, meter: SimMeter, pdu: bytes, now: int) -> bytes:
        try:
            request = modbus_rtu.parse_request(meter.address, pdu)
        except FrameError:
            return modbus_rtu.exception_pdu(pdu[0], modbus_rtu.ILLEGAL_DATA_VALUE)
        reply: bytes = self.personality.handle(meter, request, now, self.faults_for(meter))
        return reply

    def dlt645(self, frame: dlt645.Frame) -> tuple[dlt645.Frame | None, dict[str, Any]]:
        """(reply frame or None, the meter's faults) for a DL/T 645 request."""
        self.stats["requests"] += 1
        self.log.append((frame.address, frame.control))
        if frame.is_reply:
            return None, dict(FAULTS)  # another slave's answer (or an echo): not for us
        if frame.address == dlt645.BROADCAST:
            self.stats["broadcasts"] += 1
            if frame.function == dlt645.C_BROADCAST_TIME and len(frame.data) == 6:
                now = self.advance_all()
                try:
                    when = dlt645.parse_datetime_bytes(frame.data)
                except FrameError:
                    return None, dict(FAULTS)
                for each in self.meters.values():
                    ts = dlt645_slave._to_epoch(*when) - each.utc_offset_s
                    each.set_clock(now, ts * 1000)
            return None, dict(FAULTS)
        if frame.address == dlt645.WILDCARD:
            alive = [m for m in self.meters.values() if not self.faults_for(m)["dead"]]
            if frame.function != dlt645.C_READ_ADDRESS or len(alive) != 1:
                self.stats["silent"] += 1
                return None, dict(FAULTS)  # several meters would collide on a real line
            only = alive[0]
            reply = dlt645.Frame(
                only.address,
                dlt645.C_READ_ADDRESS | dlt645.REPLY,
                dlt645.encode_address(only.address),
            )
            return reply, self.faults_for(only)
        meter = self.meters.get(frame.address)
        if meter is None:
            self.stats["silent"] += 1
            return None, dict(FAULTS)
        faults = self.faults_for(meter)
        if faults["dead"]:
            self.stats["silent"] += 1
            return None, faults
        now = self.clock.now_ms()
        meter.advance(now, faults)
        answer: dlt645.Frame | None = self.personality.handle(meter, frame, now, faults)
        return answer, faults


class LineProtocol(asyncio.Protocol):
    """One connection (TCP client or serial port): decode requests, answer them in order."""

    def __init__(self, bus: SimBus, framing: str) -> None:
        self.bus = bus
        self.framing = framing  # "rtu", "mbap" or "dlt645"
        self.transport: asyncio.Transport | None = None
        self.queue: asyncio.Queue[tuple[float, int, Any]] = asyncio.Queue()
        self.worker: asyncio.Task[None] | None = None
        self.idle_handle: asyncio.TimerHandle | None = None
        self.rtu = modbus_rtu.RequestDecoder()
        self.mbap = modbus_tcp.Decoder()
        self.dlt = dlt645.Decoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.worker = asyncio.get_running_loop().create_task(self._work())
        self.bus.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.bus.connections.discard(self)
        if self.worker is not None:
            self.worker.cancel()
        if self.idle_handle is not None:
            self.idle_handle.cancel()

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        if self.framing == "rtu":
            for device_id, pdu in self.rtu.feed(data):
                self.queue.put_nowait((arrived, len(pdu) + 3, (device_id, pdu)))
            if self.idle_handle is not None:
                self.idle_handle.cancel()
            self.idle_handle = asyncio.get_running_loop().call_later(RTU_IDLE_S, self._idle)
        elif self.framing == "mbap":
            try:
                for adu in self.mbap.feed(data):
                    self.queue.put_nowait((arrived, len(adu.pdu) + 7, adu))
            except FrameError:
                if self.transport is not None:
                    self.transport.close()
        else:
            while True:
                try:
                    frames = self.dlt.feed(data)
                except ChecksumError:
                    data = b""
                    continue
                for frame in frames:
                    self.queue.put_nowait((arrived, 16 + len(frame.data), frame))
                break

    def _idle(self) -> None:
        arrived = time.monotonic()
        for device_id, pdu in self.rtu.idle():
            self.queue.put_nowait((arrived, len(pdu) + 3, (device_id, pdu)))

    async def _work(self) -> None:
        while True:
            arrived, request_bytes, item = await self.queue.get()
            try:
                out, faults = self._answer(item)
            except Exception as exc:  # a simulator bug must not silence the whole line
                print(f"gridvend sim: error answering {item!r}: {exc!r}", file=sys.stderr)
                continue
            if out is None:
                continue
            delay = self.bus.reply_delay_s(request_bytes, len(out), faults)
            wait = arrived + delay - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.transport is not None and not self.transport.is_closing():
                self.transport.write(out)
                self.bus.stats["replies"] += 1

    def _answer(self, item: Any) -> tuple[bytes | None, dict[str, Any]]:
        bus = self.bus
        if self.framing == "rtu":
            device_id, pdu = item
            reply, faults = bus.modbus(device_id, pdu)
            if reply is None:
                return None, faults
            return bus.damage(modbus_rtu.encode(device_id, reply), faults), faults
        if self.framing == "mbap":
            adu = item
            reply, faults = bus.modbus(adu.unit_id, adu.pdu)
            if reply is None:
                return None, faults
            return modbus_tcp.encode(adu.transaction_id, adu.unit_id, reply), faults
        frame, faults = bus.dlt645(item)
        if frame is None:
            return None, faults
        return bus.damage(dlt645.encode(frame, preamble=4), faults), faults


async def serve_tcp(bus: SimBus, host: str, port: int, framing: str) -> asyncio.Server:
    """Listen on host:port; each connection is a line."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: LineProtocol(bus, framing), host, port)


async def serve_serial(bus: SimBus, path: str, framing: str) -> asyncio.BaseTransport:
    """Open a serial device (a pty's far end, a USB RS-485 adapter) and serve it."""

    loop = asyncio.get_running_loop()
    transport, _ = await serial_asyncio.create_serial_connection(
        loop,
        lambda: LineProtocol(bus, framing),
        path,
        baudrate=bus.baud,
        parity=device_parity(path, bus.parity),
        stopbits=bus.stop_bits,
        bytesize=8,
    )
    return transport


def framing_for(bus: SimBus, scheme: str) -> str:
    """The framing for a listen scheme (``tcp`` or ``modbus-tcp``) or ``serial``."""
    if bus.protocol == "dlt645":
        if scheme == "modbus-tcp":
            raise ValueError("DL/T 645 meters cannot be served over Modbus TCP")
        return "dlt645"
    return "mbap" if scheme == "modbus-tcp" else "rtu"


async def close_quietly(obj: Any) -> None:
    with contextlib.suppress(Exception):
        obj.close()
        if hasattr(obj, "wait_closed"):
            await obj.wait_closed()
