"""Masters for one line: Modbus RTU (serial or RTU over TCP), Modbus TCP, and DL/T 645.

A client owns its link and enforces what the line needs and pymodbus does not do: the silent gap
between frames (t3.5 by default), dropping stale input before each request, a timeout computed
from the wire time of the exchange plus an answer allowance, and a quick failure on a corrupted
reply (once the line has been quiet for the gap) instead of waiting for the timeout. It counts
what happens (``stats``) and keeps recent transaction latencies for the bus's health report.

One client per physical line, used by one task at a time (the bus); it is not a lock.
Clients frame bytes with the sans-I/O codecs in ``shared/codec``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from edge.drivers.link import Link
from edge.errors import LinkError, NoAnswerError
from shared.codec import dlt645, modbus_rtu, modbus_tcp
from shared.codec.errors import ChecksumError, FrameError, ProtocolError
from shared.codec.serial_line import bits_per_char, t35_us, wire_time_us

STAT_KEYS = (
    "requests",
    "replies",
    "timeouts",
    "crc_errors",
    "frame_errors",
    "exception_replies",
    "link_errors",
    "retries",
    "garbage_bytes",
    "stale_bytes",
)


class LineClient:
    """What every client shares: timing, gap, counters, latencies, the write hook."""

    protocol = ""
    default_answer_ms = 200

    def __init__(
        self,
        link: Link,
        *,
        baud: int = 9600,
        parity: str = "N",
        stop_bits: int = 1,
        gap_ms: float | None = None,
        answer_ms: int | None = None,
    ) -> None:
        self.link = link
        self.url = link.url
        self.baud = baud
        self.parity = parity
        self.bits = bits_per_char(parity, stop_bits)
        self.gap_us = t35_us(baud, self.bits) if gap_ms is None else int(gap_ms * 1000)
        self.answer_ms = self.default_answer_ms if answer_ms is None else answer_ms
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        self.latencies_us: deque[int] = deque(maxlen=1024)
        # Called with time.monotonic() the instant a request frame is handed to the link; the
        # bus uses it to measure how long a command waited for the line.
        self.on_write: Callable[[float], None] | None = None
        # Awaited before each request frame: the bus runs pending commands there, so a command
        # never waits for more than the transaction in progress.
        self.before_send: Callable[[], Awaitable[None]] | None = None
        self._quiet_at = 0.0

    def wire_ms(self, nbytes: int) -> float:
        """Milliseconds ``nbytes`` take on the line."""
        return wire_time_us(nbytes, self.baud, self.bits) / 1000

    def timeout_ms_for(self, request_bytes: int, reply_bytes: int) -> int:
        """Default timeout of one exchange: its wire time, two gaps, the answer allowance."""
        wire_us = wire_time_us(request_bytes + reply_bytes, self.baud, self.bits)
        return -(-(wire_us + 2 * self.gap_us) // 1000) + self.answer_ms

    async def close(self) -> None:
        await self.link.close()

    async def _send(self, frame: bytes) -> float:
        """Open the link if needed, keep the gap, drop stale input, write; returns the time."""
        if self.before_send is not None:
            await self.before_send()
        try:
            await self.link.ensure_open()
        except LinkError:
            self.stats["link_errors"] += 1
            raise
        wait = self._quiet_at - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self.stats["stale_bytes"] += self.link.discard()
        self.link.write(frame)
        sent = time.monotonic()
        self.stats["requests"] += 1
        if self.on_write is not None:
            self.on_write(sent)
        return sent

    def _quiet_after(self, extra_s: float = 0.0) -> None:
        self._quiet_at = time.monotonic() + extra_s + self.gap_us / 1_000_000

    async def _receive(
        self,
        feed: Callable[[bytes], Any],
        error: Callable[[], Any],
        sent: float,
        timeout_ms: int,
        address: object,
    ) -> Any:
        """Feed arriving bytes to ``feed`` until it returns a result. A corrupted candidate
        (``error()`` not None) is raised once the line stays quiet for the gap (plus scheduling
        slack); nothing at all by the deadline is a NoAnswerError."""
        deadline = sent + timeout_ms / 1000
        settle_s = self.gap_us / 1_000_000 + 0.005
        try:
            while True:
                now = time.monotonic()
                remaining = deadline - now
                pending = error()
                wait_s = min(remaining, settle_s) if pending is not None else remaining
                try:
                    got = await self.link.wait_data(wait_s)
                except LinkError:
                    self.stats["link_errors"] += 1
                    raise
                if got:
                    result = feed(self.link.take())
                    if result is not None:
                        self.stats["replies"] += 1
                        self.latencies_us.append(int((time.monotonic() - sent) * 1_000_000))
                        return result
                    continue
                pending = error()
                if pending is not None:
                    self._count_error(pending)
                    raise pending
                if time.monotonic() >= deadline:
                    self.stats["timeouts"] += 1
                    raise NoAnswerError(address, self.url, timeout_ms)
        finally:
            self._quiet_after()

    def _count_error(self, exc: BaseException) -> None:
        if isinstance(exc, ChecksumError):
            self.stats["crc_errors"] += 1
        elif isinstance(exc, FrameError):
            self.stats["frame_errors"] += 1

    async def _with_retries(self, attempt: Callable[[], Any], retries: int) -> Any:
        for n in range(retries + 1):
            try:
                return await attempt()
            except (NoAnswerError, FrameError) as exc:
                if n == retries:
                    raise
                del exc
                self.stats["retries"] += 1
        raise AssertionError("unreachable")


class ModbusClient(LineClient):
    """Common Modbus API over RTU or MBAP framing."""

    protocol = "modbus"

    async def transact(
        self, device_id: int, pdu: bytes, *, timeout_ms: int | None = None, retries: int = 0
    ) -> bytes:
        raise NotImplementedError

    async def read_registers(
        self,
        device_id: int,
        address: int,
        count: int,
        *,
        function: int = modbus_rtu.FC_READ_HOLDING,
        timeout_ms: int | None = None,
        retries: int = 0,
    ) -> list[int]:
        """FC03/FC04 read; raises NoAnswerError, ModbusExceptionError, ChecksumError, LinkError."""
        pdu = modbus_rtu.read_registers_pdu(address, count, function)
        reply = await self.transact(device_id, pdu, timeout_ms=timeout_ms, retries=retries)
        return modbus_rtu.parse_reply(pdu, reply)

    async def write_registers(
        self,
        device_id: int,
        address: int,
        values: list[int],
        *,
        timeout_ms: int | None = None,
        retries: int = 0,
    ) -> None:
        """FC16 write (no reply expected for broadcast device 0)."""
        pdu = modbus_rtu.write_registers_pdu(address, values)
        reply = await self.transact(device_id, pdu, timeout_ms=timeout_ms, retries=retries)
        if device_id != 0:
            modbus_rtu.parse_reply(pdu, reply)


class ModbusRtuClient(ModbusClient):
    """Modbus RTU over a serial port or a serial device server (RTU over TCP)."""

    async def transact(
        self, device_id: int, pdu: bytes, *, timeout_ms: int | None = None, retries: int = 0
    ) -> bytes:
        """One request, its reply PDU (an exception reply PDU is returned, not raised)."""
        frame = modbus_rtu.encode(device_id, pdu)
        if device_id == 0:
            await self._send(frame)
            self._quiet_after(self.wire_ms(len(frame)) / 1000)
            return b""
        reply_bytes = 3 + modbus_rtu.reply_pdu_length(pdu)
        timeout = timeout_ms or self.timeout_ms_for(len(frame), reply_bytes)

        async def attempt() -> bytes:
            decoder = modbus_rtu.ReplyDecoder(device_id, pdu)
            sent = await self._send(frame)
            try:
                reply: bytes = await self._receive(
                    decoder.feed, lambda: decoder.error, sent, timeout, device_id
                )
            finally:
                self.stats["garbage_bytes"] += decoder.garbage_bytes
            if reply[0] & 0x80:
                self.stats["exception_replies"] += 1
            return reply

        result: bytes = await self._with_retries(attempt, retries)
        return result


class ModbusTcpClient(ModbusClient):
    """Modbus TCP (MBAP). No inter-frame gap: the gateway times its own serial side."""

    def __init__(self, link: Link, **kwargs: Any) -> None:
        kwargs.setdefault("gap_ms", 0)
        super().__init__(link, **kwargs)
        self._tid = 0
        self._closing: asyncio.Future[None] | None = None

    async def transact(
        self, device_id: int, pdu: bytes, *, timeout_ms: int | None = None, retries: int = 0
    ) -> bytes:
        """One request, its reply PDU (matched by transaction id)."""
        timeout = timeout_ms or self.timeout_ms_for(
            modbus_tcp.HEADER_BYTES + len(pdu), 7 + modbus_rtu.reply_pdu_length(pdu)
        )

        async def attempt() -> bytes:
            self._tid = self._tid % 0xFFFF + 1
            tid = self._tid
            decoder = modbus_tcp.Decoder()
            sent = await self._send(modbus_tcp.encode(tid, device_id, pdu))
            if device_id == 0:
                return b""

            def feed(data: bytes) -> bytes | None:
                try:
                    frames = decoder.feed(data)
                except FrameError:
                    self.stats["frame_errors"] += 1
                    # The stream is unusable: drop the connection; the next request reconnects.
                    self._closing = asyncio.ensure_future(self.link.close())
                    raise
                for adu in frames:
                    if adu.transaction_id == tid and adu.unit_id == device_id:
                        return adu.pdu
                    self.stats["stale_bytes"] += len(adu.pdu) + 7
                return None

            reply: bytes = await self._receive(feed, lambda: None, sent, timeout, device_id)
            if reply[0] & 0x80:
                self.stats["exception_replies"] += 1
            return reply

        result: bytes = await self._with_retries(attempt, retries)
        return result


class Dlt645Client(LineClient):
    """DL/T 645-2007 master (serial, or TCP through a serial device server)."""

    protocol = "dlt645"
    default_answer_ms = 600  # Td is 20..500 ms on real meters (protocols.md §3)

    async def transact(
        self,
        request: dlt645.Frame,
        *,
        timeout_ms: int | None = None,
        retries: int = 0,
        reply_bytes: int = 40,
    ) -> dlt645.Frame:
        """Send ``request``, return the frame that answers it (normal or abnormal)."""
        raw = dlt645.encode(request)
        timeout = timeout_ms or self.timeout_ms_for(len(raw), reply_bytes)

        async def attempt() -> dlt645.Frame:
            decoder = dlt645.Decoder()
            state: dict[str, ProtocolError | None] = {"error": None}

            def feed(data: bytes) -> dlt645.Frame | None:
                while True:
                    try:
                        frames = decoder.feed(data)
                    except ChecksumError as exc:
                        state["error"] = exc
                        data = b""
                        continue
                    for frame in frames:
                        if dlt645.answers(request, frame):
                            return frame
                    return None

            sent = await self._send(raw)
            try:
                reply: dlt645.Frame = await self._receive(
                    feed, lambda: state["error"], sent, timeout, request.address
                )
            finally:
                self.stats["garbage_bytes"] += decoder.garbage_bytes
            if reply.is_abnormal:
                self.stats["exception_replies"] += 1
            return reply

        result: dlt645.Frame = await self._with_retries(attempt, retries)
        return result

    async def send(self, request: dlt645.Frame) -> None:
        """A frame nobody answers (08H broadcast time)."""
        raw = dlt645.encode(request)
        await self._send(raw)
        self._quiet_after(self.wire_ms(len(raw)) / 1000)

    async def read(
        self, address: str, di: int, *, timeout_ms: int | None = None, retries: int = 0
    ) -> bytes:
        """Read one DI (following 12H follow-ups); returns its data bytes."""
        request = dlt645.read_request(address, di)
        size = dlt645.ITEMS[di].fields * dlt645.ITEMS[di].size if di in dlt645.ITEMS else 40
        reply = await self.transact(
            request, timeout_ms=timeout_ms, retries=retries, reply_bytes=20 + size
        )
        data, more = dlt645.parse_read_reply(request, reply)
        parts = [data]
        seq = 0
        while more:
            seq += 1
            if seq > 255:
                raise FrameError(f"meter {address} sent more than 255 follow-up frames")
            request = dlt645.read_followup_request(address, di, seq)
            reply = await self.transact(request, timeout_ms=timeout_ms, retries=retries)
            data, more = dlt645.parse_read_reply(request, reply)
            parts.append(data)
        return b"".join(parts)
