"""Byte links under the framing clients: a TCP connection (serial device servers, Modbus TCP) or
a serial port (pyserial-asyncio, so a socat pty or a USB RS-485 adapter works).

A link buffers what arrives; a client writes a frame, waits for bytes with a deadline, and
discards stale input before its next request. A link (re)connects lazily on first use, and after
a failure waits before trying again (0.5 s doubling to 10 s) so a dead serial server costs the
bus nothing but an immediate LinkError while it is down.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from typing import Any

import serial
import serial_asyncio

from edge.errors import LinkError

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 10.0


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = bytearray()
        self.event = asyncio.Event()
        self.transport: asyncio.BaseTransport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.event.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.event.set()


class Link:
    """Base: subclasses implement :meth:`_connect`. ``url`` names the line in messages."""

    url = "?"

    def __init__(self, connect_timeout_ms: int = 3000) -> None:
        self.connect_timeout_ms = connect_timeout_ms
        self._proto: _Protocol | None = None
        self._retry_at = 0.0
        self._retry_s = RECONNECT_MIN_S
        self.connects = 0

    async def _connect(self) -> _Protocol:
        raise NotImplementedError

    @property
    def is_open(self) -> bool:
        return self._proto is not None and not self._proto.lost

    async def ensure_open(self) -> None:
        """Connect if needed; LinkError if it fails (or failed recently)."""
        if self.is_open:
            return
        now = time.monotonic()
        if now < self._retry_at:
            raise LinkError(
                f"{self.url} is unavailable; next attempt in {self._retry_at - now:.1f} s"
            )
        try:
            self._proto = await asyncio.wait_for(
                self._connect(), timeout=self.connect_timeout_ms / 1000
            )
        except (TimeoutError, OSError, ValueError) as exc:
            self._proto = None
            self._retry_at = time.monotonic() + self._retry_s
            self._retry_s = min(self._retry_s * 2, RECONNECT_MAX_S)
            detail = str(exc) or type(exc).__name__
            raise LinkError(f"cannot open {self.url}: {detail}") from exc
        self._retry_s = RECONNECT_MIN_S
        self.connects += 1

    def write(self, data: bytes) -> None:
        """Send bytes now (the link must be open)."""
        proto = self._proto
        if proto is None or proto.lost or proto.transport is None:
            raise LinkError(f"{self.url} is not connected")
        proto.transport.write(data)  # type: ignore[attr-defined]

    def take(self) -> bytes:
        """Everything received and not yet taken."""
        proto = self._proto
        if proto is None:
            return b""
        data = bytes(proto.buf)
        proto.buf.clear()
        proto.event.clear()
        return data

    def discard(self) -> int:
        """Drop stale input (a late reply, line noise); returns how many bytes."""
        return len(self.take())

    async def wait_data(self, timeout_s: float) -> bool:
        """Wait until bytes are buffered (True) or ``timeout_s`` passes (False). LinkError if the
        connection is lost."""
        proto = self._proto
        if proto is None or proto.lost:
            raise LinkError(f"{self.url} connection lost")
        if proto.buf:
            return True
        if timeout_s <= 0:
            return False
        try:
            await asyncio.wait_for(proto.event.wait(), timeout=timeout_s)
        except TimeoutError:
            return bool(proto.buf)
        if proto.lost and not proto.buf:
            raise LinkError(f"{self.url} connection lost")
        return bool(proto.buf)

    async def close(self) -> None:
        """Close the connection (a later use reconnects)."""
        proto, self._proto = self._proto, None
        if proto is not None and proto.transport is not None:
            proto.transport.close()
            await asyncio.sleep(0)


class TcpLink(Link):
    """A TCP connection to host:port (RTU over TCP, DL/T 645 over TCP, or Modbus TCP)."""

    def __init__(self, host: str, port: int, url: str, connect_timeout_ms: int = 3000) -> None:
        super().__init__(connect_timeout_ms)
        self.host = host
        self.port = port
        self.url = url

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(_Protocol, self.host, self.port)
        sock: Any = proto.transport.get_extra_info("socket") if proto.transport else None
        if sock is not None:
            # Frames are small and latency is what counts: no Nagle delay.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return proto


def is_pty(path: str) -> bool:
    """True for a pseudo-terminal (a socat pair's end): Unix98 pty slaves have majors 136-143."""
    try:
        return os.major(os.stat(path).st_rdev) in range(136, 144)
    except OSError:
        return False


def device_parity(path: str, parity: str) -> str:
    """The parity to program into the device: a pty has no parity bit and Linux refuses one
    (EINVAL), so a pty is opened without it; the line's timing still counts the parity bit."""
    return "N" if is_pty(path) else parity


class SerialLink(Link):
    """A serial device (``/dev/ttyUSB0``, a pty) at the given baud and framing."""

    def __init__(
        self,
        path: str,
        baud: int,
        parity: str = "N",
        stop_bits: int = 1,
        connect_timeout_ms: int = 3000,
    ) -> None:
        super().__init__(connect_timeout_ms)
        self.path = path
        self.baud = baud
        self.parity = parity
        self.stop_bits = stop_bits
        self.url = path

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        try:
            _, proto = await serial_asyncio.create_serial_connection(
                loop,
                _Protocol,
                self.path,
                baudrate=self.baud,
                parity=device_parity(self.path, self.parity),
                stopbits=self.stop_bits,
                bytesize=8,
            )
        except serial.SerialException as exc:
            raise OSError(str(exc)) from exc
        return proto
