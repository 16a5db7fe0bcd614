"""Modbus RTU: PDUs, RTU framing with CRC-16, and streaming decoders for both ends of a line.

Theory of operation
-------------------
A Modbus PDU is a function code and its data; RTU frames it as ``device id | PDU | CRC-16``
(CRC low byte first). On a real line a frame ends with 3.5 characters of silence; through a
serial device server (RTU over TCP) or a pty that timing is lost, so both decoders here frame by
*length*, which the function code determines, and use the CRC to tell a frame from garbage:

* :class:`ReplyDecoder` (master side) knows the request it answers, so it knows the device id,
  the function and the reply length. It skips bytes that cannot start the reply (leading
  garbage), returns the reply PDU once a candidate with a good CRC is complete, and remembers a
  candidate with a bad CRC in :attr:`ReplyDecoder.error` so the I/O layer can fail fast (after a
  short silence) instead of waiting for its timeout.
* :class:`RequestDecoder` (slave side, the simulator) returns every complete request with a good
  CRC; a bad candidate costs one byte and the scan goes on (resynchronisation).

Exception replies (function | 0x80, one exception code) are complete frames too;
:func:`parse_reply` turns them into :class:`~shared.codec.errors.ModbusExceptionError`.
Sans-I/O: bytes in, bytes or values out; no clock, no sockets.
"""

from __future__ import annotations

from typing import NamedTuple

from shared.codec.errors import ChecksumError, FrameError, ModbusExceptionError, UsageError

FC_READ_HOLDING = 0x03
FC_READ_INPUT = 0x04
FC_WRITE_SINGLE = 0x06
FC_WRITE_MULTIPLE = 0x10
READ_FUNCTIONS = (0x01, 0x02, FC_READ_HOLDING, FC_READ_INPUT)
MAX_READ_COUNT = 125  # registers in one FC03/FC04 reply (250 data bytes)
MAX_WRITE_COUNT = 123  # registers in one FC16 request
MAX_DEVICE_ID = 247  # 0 is broadcast; 248..255 are reserved
MAX_ADU_BYTES = 256

# Exception codes (Modbus application protocol §7).
ILLEGAL_FUNCTION = 1
ILLEGAL_DATA_ADDRESS = 2
ILLEGAL_DATA_VALUE = 3
DEVICE_FAILURE = 4


def _make_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _make_table()


def crc16(data: bytes) -> int:
    """Modbus CRC-16 (poly 0xA001 reflected, initial 0xFFFF). Sent low byte first."""
    crc = 0xFFFF
    for byte in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ byte) & 0xFF]
    return crc


def _crc_ok(frame: bytes | bytearray) -> bool:
    body = bytes(frame[:-2])
    return crc16(body) == frame[-2] | (frame[-1] << 8)


def encode(device_id: int, pdu: bytes) -> bytes:
    """One RTU frame: device id, the PDU, the CRC (low byte first)."""
    if not 0 <= device_id <= MAX_DEVICE_ID:
        raise UsageError(f"Modbus device id must be 0..{MAX_DEVICE_ID} (got {device_id})")
    if not pdu or len(pdu) > MAX_ADU_BYTES - 3:
        raise UsageError(f"PDU must be 1..{MAX_ADU_BYTES - 3} bytes (got {len(pdu)})")
    body = bytes([device_id]) + pdu
    crc = crc16(body)
    return body + bytes([crc & 0xFF, crc >> 8])


# --- PDUs a master sends ------------------------------------------------------------------------


def _u16(value: int, what: str) -> bytes:
    if not 0 <= value <= 0xFFFF:
        raise UsageError(f"{what} must be 0..65535 (got {value})")
    return value.to_bytes(2, "big")


def read_registers_pdu(address: int, count: int, function: int = FC_READ_HOLDING) -> bytes:
    """FC03 (holding) or FC04 (input) read of ``count`` registers from ``address``."""
    if function not in (FC_READ_HOLDING, FC_READ_INPUT):
        raise UsageError(f"not a register read function: 0x{function:02X}")
    if not 1 <= count <= MAX_READ_COUNT:
        raise UsageError(f"register count must be 1..{MAX_READ_COUNT} (got {count})")
    return bytes([function]) + _u16(address, "address") + _u16(count, "count")


def write_register_pdu(address: int, value: int) -> bytes:
    """FC06: write one holding register."""
    return bytes([FC_WRITE_SINGLE]) + _u16(address, "address") + _u16(value, "value")


def write_registers_pdu(address: int, values: list[int]) -> bytes:
    """FC16: write consecutive holding registers."""
    if not 1 <= len(values) <= MAX_WRITE_COUNT:
        raise UsageError(f"register count must be 1..{MAX_WRITE_COUNT} (got {len(values)})")
    data = b"".join(_u16(v, "register value") for v in values)
    head = bytes([FC_WRITE_MULTIPLE]) + _u16(address, "address") + _u16(len(values), "count")
    return head + bytes([len(data)]) + data


def reply_pdu_length(request_pdu: bytes) -> int:
    """Length of the normal reply PDU to ``request_pdu`` (an exception reply is 2 bytes)."""
    function = request_pdu[0]
    if function in (FC_READ_HOLDING, FC_READ_INPUT):
        return 2 + 2 * int.from_bytes(request_pdu[3:5], "big")
    if function in (0x01, 0x02):
        return 2 + (int.from_bytes(request_pdu[3:5], "big") + 7) // 8
    if function in (0x05, FC_WRITE_SINGLE, 0x0F, FC_WRITE_MULTIPLE):
        return 5
    raise UsageError(f"no reply length known for function 0x{function:02X}")


def parse_reply(request_pdu: bytes, reply_pdu: bytes) -> list[int]:
    """Check a reply PDU against its request; return the registers read (``[]`` for writes).

    Raises ModbusExceptionError for an exception reply and FrameError for a reply that does not
    match the request (wrong function, byte count or echo)."""
    function = request_pdu[0]
    if not reply_pdu:
        raise FrameError("empty reply PDU")
    if reply_pdu[0] == function | 0x80:
        if len(reply_pdu) != 2:
            raise FrameError(f"exception reply must be 2 bytes (got {len(reply_pdu)})")
        raise ModbusExceptionError(function, reply_pdu[1])
    if reply_pdu[0] != function:
        raise FrameError(f"reply function 0x{reply_pdu[0]:02X} answers 0x{function:02X}")
    if len(reply_pdu) != reply_pdu_length(request_pdu):
        raise FrameError(
            f"reply to 0x{function:02X} must be {reply_pdu_length(request_pdu)} bytes "
            f"(got {len(reply_pdu)})"
        )
    if function in (FC_READ_HOLDING, FC_READ_INPUT):
        if reply_pdu[1] != len(reply_pdu) - 2:
            raise FrameError(f"byte count {reply_pdu[1]} does not match {len(reply_pdu) - 2}")
        data = reply_pdu[2:]
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if function in (FC_WRITE_SINGLE, FC_WRITE_MULTIPLE) and reply_pdu[1:5] != request_pdu[1:5]:
        raise FrameError("write reply does not echo the request's address and count")
    return []


# --- PDUs a slave sends (the simulator) -------------------------------------------------------


class Request(NamedTuple):
    """A decoded request: the function, its address and quantity (registers or coils), and the
    values written (FC06/16)."""

    device_id: int
    function: int
    address: int
    quantity: int
    values: tuple[int, ...]
    pdu: bytes


def parse_request(device_id: int, pdu: bytes) -> Request:
    """Decode a request PDU (for a slave). Unknown functions come back with address/quantity 0 so
    the slave can answer ILLEGAL_FUNCTION; malformed known ones raise FrameError."""
    function = pdu[0]
    if function in READ_FUNCTIONS or function in (0x05, FC_WRITE_SINGLE):
        if len(pdu) != 5:
            raise FrameError(f"function 0x{function:02X} request must be 5 bytes")
        address = int.from_bytes(pdu[1:3], "big")
        word = int.from_bytes(pdu[3:5], "big")
        if function == FC_WRITE_SINGLE:
            return Request(device_id, function, address, 1, (word,), pdu)
        return Request(device_id, function, address, word, (), pdu)
    if function in (0x0F, FC_WRITE_MULTIPLE):
        if len(pdu) < 6 or len(pdu) != 6 + pdu[5]:
            raise FrameError(f"function 0x{function:02X} request has a bad byte count")
        address = int.from_bytes(pdu[1:3], "big")
        count = int.from_bytes(pdu[3:5], "big")
        data = pdu[6:]
        values: tuple[int, ...] = ()
        if function == FC_WRITE_MULTIPLE:
            if len(data) != 2 * count:
                raise FrameError("FC16 byte count does not match the register count")
            values = tuple(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
        return Request(device_id, function, address, count, values, pdu)
    return Request(device_id, function, 0, 0, (), pdu)


def read_reply_pdu(function: int, values: list[int]) -> bytes:
    """The normal reply to an FC03/FC04 read."""
    data = b"".join(_u16(v, "register value") for v in values)
    return bytes([function, len(data)]) + data


def write_reply_pdu(request: Request) -> bytes:
    """The normal reply to FC06 (echo) or FC16 (address and count)."""
    return request.pdu[:5]


def exception_pdu(function: int, code: int) -> bytes:
    """An exception reply PDU."""
    return bytes([function | 0x80, code])


def _request_length(buf: bytearray, start: int) -> int:
    """Frame length of a request starting at ``start``: >0 known, 0 need more bytes,
    -1 cannot be a request we can frame."""
    have = len(buf) - start
    if have < 2:
        return 0
    function = buf[start + 1]
    if function in READ_FUNCTIONS or function in (0x05, FC_WRITE_SINGLE):
        return 8
    if function in (0x0F, FC_WRITE_MULTIPLE):
        if have < 7:
            return 0
        return 9 + buf[start + 6]
    return -1


class RequestDecoder:
    """Slave-side stream decoder: ``feed(bytes)`` returns the complete requests (device id, PDU)
    with good CRCs, skipping garbage one byte at a time. ``garbage_bytes`` counts what it skipped.

    A request with a function we cannot frame by length is accepted only when the whole buffer
    is one frame with a good CRC (RTU over TCP delivers a frame in one piece)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add bytes; return the requests now complete."""
        self._buf += data
        out: list[tuple[int, bytes]] = []
        while self._buf:
            if self._buf[0] > MAX_DEVICE_ID:
                self._skip(1)
                continue
            length = _request_length(self._buf, 0)
            if length == 0:
                break
            if length < 0:
                if len(self._buf) >= 4 and _crc_ok(self._buf):
                    out.append((self._buf[0], bytes(self._buf[1:-2])))
                    self._buf.clear()
                    break
                if len(self._buf) >= MAX_ADU_BYTES:
                    self._skip(1)
                    continue
                # Wait a little: the rest may still come. A later byte that starts a known
                # frame is found once this candidate is dropped by idle().
                break
            if len(self._buf) < length:
                break
            frame = self._buf[:length]
            if _crc_ok(frame):
                out.append((frame[0], bytes(frame[1:-2])))
                del self._buf[:length]
            else:
                self._skip(1)
        return out

    def idle(self) -> list[tuple[int, bytes]]:
        """The line went quiet (t3.5): what has not formed a frame is garbage. Drop it byte by
        byte until a complete request turns up in what follows (or nothing is left)."""
        while self._buf:
            self._skip(1)
            out = self.feed(b"")
            if out:
                return out
        return []

    def _skip(self, n: int) -> None:
        del self._buf[:n]
        self.garbage_bytes += n


class ReplyDecoder:
    """Master-side decoder for the one reply a request expects.

    ``feed(bytes)`` returns the reply PDU once a frame from ``device_id`` with the expected
    function (or its exception) and a good CRC is complete, else ``None`` (need more bytes). A
    complete candidate with a bad CRC sets :attr:`error` (a ChecksumError) and the scan goes on:
    the I/O layer raises it if the line stays quiet."""

    def __init__(self, device_id: int, request_pdu: bytes) -> None:
        self.device_id = device_id
        self.function = request_pdu[0]
        self.length = 3 + reply_pdu_length(request_pdu)
        self._buf = bytearray()
        self.error: ChecksumError | None = None
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> bytes | None:
        """Add bytes; return the reply PDU when complete."""
        self._buf += data
        buf = self._buf
        start = 0
        while start < len(buf):
            if buf[start] != self.device_id:
                start += 1
                continue
            if len(buf) - start < 2:
                break
            fc = buf[start + 1]
            if fc == self.function:
                length = self.length
            elif fc == self.function | 0x80:
                length = 5
            else:
                start += 1
                continue
            if len(buf) - start < length:
                break
            frame = bytes(buf[start : start + length])
            if _crc_ok(frame):
                self.garbage_bytes += start
                del buf[: start + length]
                return frame[1:-2]
            self.error = ChecksumError(
                f"CRC mismatch in reply from device {self.device_id}: {frame.hex(' ')}"
            )
            start += 1
        self.garbage_bytes += start
        del buf[:start]
        return None
