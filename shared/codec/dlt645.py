"""DL/T 645-2007 (the Chinese multi-function meter protocol), sans-I/O (protocols.md §3).

Theory of operation
-------------------
A frame is ``[FE ×0..4] 68 A0..A5 68 C L DATA CS 16``:

* ``A0..A5``: the meter address, 12 BCD digits, lowest byte first (``999999999999`` broadcast,
  no reply; ``AAAAAAAAAAAA`` wildcard, for reading the address of the only meter on a line);
* ``C``: D7 direction (1 = reply), D6 abnormal reply, D5 follow-up frames exist, D4..D0 function;
* ``L``: data length (≤ 200); every DATA byte is sent +33H (mod 256);
* ``CS``: sum mod 256 of every byte from the first 68H through DATA.

:class:`Frame` holds the *plain* data (the +33H undone). :func:`encode` turns a frame into bytes
(masters send four FE wake-up bytes first); :class:`Decoder` turns a byte stream into frames:
``feed(bytes) → [Frame, ...]``. It skips anything that cannot start a frame (FE preambles, line
noise) and resynchronises on the next 68H; a well-formed frame whose checksum is wrong raises
:class:`~shared.codec.errors.ChecksumError` after dropping its first byte, so feeding ``b""``
continues with what follows. Frames decoded before a bad one in the same call are returned and
the error is raised by the next call. Any input gives frames or a ProtocolError, nothing else.

Reads (11H) name a data identifier (DI, four bytes, DI0 first); a reply with D5 set says more
follows, fetched with 12H and a sequence number. Values are BCD, lowest byte first; a signed
value keeps its sign in the top bit. The :data:`ITEMS` table says what each DI holds and in
which integer unit (the raw BCD integer; drivers convert to gridvend units).

An abnormal reply (C | C0H) carries one ERR byte: :func:`check_reply` raises
:class:`~shared.codec.errors.Dlt645ErrorReply`, or :class:`~shared.codec.errors.Dlt645UnauthorizedError`
when bit 2 (password / authorisation) is set.
"""

from __future__ import annotations

from typing import NamedTuple

from shared.codec.errors import (
    ChecksumError,
    Dlt645ErrorReply,
    Dlt645UnauthorizedError,
    FrameError,
    UsageError,
)

PREAMBLE = b"\xfe\xfe\xfe\xfe"
START = 0x68
END = 0x16
MAX_DATA = 200
BROADCAST = "999999999999"
WILDCARD = "AAAAAAAAAAAA"

# Control byte (protocols.md §3)
REPLY = 0x80
ABNORMAL = 0x40
FOLLOWUP = 0x20
FUNCTION_MASK = 0x1F

C_BROADCAST_TIME = 0x08
C_READ = 0x11
C_READ_FOLLOWUP = 0x12
C_READ_ADDRESS = 0x13
C_WRITE = 0x14
C_WRITE_ADDRESS = 0x15
C_CHANGE_BAUD = 0x17
C_RELAY = 0x1C

# 1CH relay control, N1
RELAY_TRIP = 0x1A
RELAY_CLOSE_ALLOWED = 0x1B
RELAY_DIRECT_CLOSE = 0x1C
RELAY_ALARM = 0x2A
RELAY_ALARM_CLEAR = 0x2B
RELAY_KEEP_POWER = 0x3A
RELAY_KEEP_POWER_CLEAR = 0x3B
RELAY_OPS = (
    RELAY_TRIP,
    RELAY_CLOSE_ALLOWED,
    RELAY_DIRECT_CLOSE,
    RELAY_ALARM,
    RELAY_ALARM_CLEAR,
    RELAY_KEEP_POWER,
    RELAY_KEEP_POWER_CLEAR,
)

# Status word 3 (DI 04000503) bits
STATUS3_RELAY_OPEN = 1 << 4
STATUS3_RELAY_COMMAND_OPEN = 1 << 6
STATUS3_KEEP_POWER = 1 << 12

_HEX_DIGITS = "0123456789ABCDEF"


class Frame(NamedTuple):
    """One DL/T 645 frame: address (12 characters, most significant first), control, plain data."""

    address: str
    control: int
    data: bytes = b""

    @property
    def function(self) -> int:
        return self.control & FUNCTION_MASK

    @property
    def is_reply(self) -> bool:
        return bool(self.control & REPLY)

    @property
    def is_abnormal(self) -> bool:
        return bool(self.control & ABNORMAL)

    @property
    def has_followup(self) -> bool:
        return bool(self.control & FOLLOWUP)


# --- addresses and BCD ------------------------------------------------------------------------


def normalise_address(address: str | int) -> str:
    """A meter address as 12 characters: digits (BCD), or the all-A wildcard / all-9 broadcast.
    An int is zero-padded (5 → ``000000000005``)."""
    text = f"{address:012d}" if isinstance(address, int) else str(address).strip().upper()
    if len(text) != 12 or not (text.isdigit() or text == WILDCARD):
        raise UsageError(f"DL/T 645 address must be 12 decimal digits (got {address!r})")
    return text


def encode_address(address: str | int) -> bytes:
    """The six address bytes on the wire (lowest byte first)."""
    text = normalise_address(address)
    return bytes(int(text[i : i + 2], 16) for i in range(10, -1, -2))


def decode_address(raw: bytes) -> str:
    """Six wire bytes to the 12-character address (hex digits, so a wildcard reads AAAA…)."""
    return "".join(f"{b:02X}" for b in reversed(raw))


def bcd_encode(value: int, nbytes: int, signed: bool = False) -> bytes:
    """``value`` as ``nbytes`` BCD bytes, lowest first; sign in the top bit when ``signed``."""
    negative = value < 0
    if negative and not signed:
        raise UsageError(f"negative value {value} for an unsigned BCD field")
    magnitude = -value if negative else value
    digits = f"{magnitude:0{2 * nbytes}d}"
    if len(digits) > 2 * nbytes or (signed and int(digits[0]) > 7):
        raise UsageError(f"value {value} does not fit {nbytes} BCD bytes")
    raw = bytearray(int(digits[i : i + 2], 16) for i in range(len(digits) - 2, -1, -2))
    if negative:
        raw[-1] |= 0x80
    return bytes(raw)


def bcd_decode(raw: bytes, signed: bool = False) -> int:
    """BCD bytes (lowest first) to an int; FrameError on a nibble above 9."""
    data = bytearray(raw)
    negative = False
    if signed and data:
        negative = bool(data[-1] & 0x80)
        data[-1] &= 0x7F
    value = 0
    for byte in reversed(data):
        high, low = byte >> 4, byte & 0x0F
        if high > 9 or low > 9:
            raise FrameError(f"not BCD: {bytes(raw).hex(' ')}")
        value = value * 100 + high * 10 + low
    return -value if negative else value


def datetime_bytes(year: int, month: int, day: int, hour: int, minute: int, second: int) -> bytes:
    """``ssmmhhDDMMYY`` as sent (08H broadcast time, 1CH expiry)."""
    if not 2000 <= year <= 2099:
        raise UsageError(f"DL/T 645 years are 2000..2099 (got {year})")
    return b"".join(bcd_encode(v, 1) for v in (second, minute, hour, day, month, year - 2000))


def parse_datetime_bytes(raw: bytes) -> tuple[int, int, int, int, int, int]:
    """``ssmmhhDDMMYY`` back to (year, month, day, hour, minute, second)."""
    if len(raw) != 6:
        raise FrameError(f"date-time must be 6 bytes (got {len(raw)})")
    ss, mm, hh, dd, mo, yy = (bcd_decode(raw[i : i + 1]) for i in range(6))
    return 2000 + yy, mo, dd, hh, mm, ss


# --- frames -----------------------------------------------------------------------------------


def encode(frame: Frame, preamble: int = 4) -> bytes:
    """Frame to bytes: ``preamble`` FE bytes, header, data +33H, checksum, 16H."""
    if len(frame.data) > MAX_DATA:
        raise UsageError(f"DL/T 645 data is at most {MAX_DATA} bytes (got {len(frame.data)})")
    if not 0 <= frame.control <= 0xFF:
        raise UsageError(f"control byte must be 0..255 (got {frame.control})")
    body = (
        bytes([START])
        + encode_address(frame.address)
        + bytes([START, frame.control, len(frame.data)])
        + bytes((b + 0x33) & 0xFF for b in frame.data)
    )
    return b"\xfe" * preamble + body + bytes([sum(body) & 0xFF, END])


class Decoder:
    """Stream decoder: ``feed(bytes) → [Frame, ...]`` (see the module docstring)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[Frame]:
        """Add bytes; return the frames now complete. Raises ChecksumError (see above)."""
        self._buf += data
        buf = self._buf
        out: list[Frame] = []
        while buf:
            if buf[0] != START:
                if buf[0] != 0xFE:
                    self.garbage_bytes += 1
                del buf[0]
                continue
            if len(buf) < 10:
                break
            length = buf[9]
            if buf[7] != START or length > MAX_DATA:
                self._drop()
                continue
            total = 12 + length
            if len(buf) < total:
                break
            if buf[total - 1] != END:
                self._drop()
                continue
            checksum = sum(buf[: 10 + length]) & 0xFF
            if checksum != buf[10 + length]:
                if out:
                    break  # report the bad frame on the next call; return the good ones now
                raw = bytes(buf[:total])
                self._drop()
                raise ChecksumError(f"DL/T 645 checksum mismatch in {raw.hex(' ')}")
            out.append(
                Frame(
                    decode_address(bytes(buf[1:7])),
                    buf[8],
                    bytes((b - 0x33) & 0xFF for b in buf[10 : 10 + length]),
                )
            )
            del buf[:total]
        return out

    def _drop(self) -> None:
        del self._buf[0]
        self.garbage_bytes += 1


# --- requests (master) ------------------------------------------------------------------------


def _di_bytes(di: int) -> bytes:
    if not 0 <= di <= 0xFFFFFFFF:
        raise UsageError(f"data identifier must be 32 bits (got {di})")
    return di.to_bytes(4, "little")


def _credentials(password: bytes, operator: bytes) -> bytes:
    if len(password) != 4 or len(operator) != 4:
        raise UsageError("password (PA P0 P1 P2) and operator code (C0..C3) are 4 bytes each")
    return password + operator


def read_request(address: str | int, di: int) -> Frame:
    """11H: read data identifier ``di``."""
    return Frame(normalise_address(address), C_READ, _di_bytes(di))


def read_followup_request(address: str | int, di: int, seq: int) -> Frame:
    """12H: the next part of a read whose reply had the follow-up bit set."""
    return Frame(normalise_address(address), C_READ_FOLLOWUP, _di_bytes(di) + bytes([seq & 0xFF]))


def read_address_request() -> Frame:
    """13H with the wildcard address: the only meter on the line answers with its address."""
    return Frame(WILDCARD, C_READ_ADDRESS, b"")


def write_request(
    address: str | int, di: int, data: bytes, password: bytes, operator: bytes
) -> Frame:
    """14H: write ``data`` to ``di`` (password and operator code first)."""
    return Frame(
        normalise_address(address), C_WRITE, _di_bytes(di) + _credentials(password, operator) + data
    )


def relay_request(
    address: str | int,
    op: int,
    expiry: tuple[int, int, int, int, int, int],
    password: bytes,
    operator: bytes,
) -> Frame:
    """1CH relay control: ``op`` is N1 (RELAY_TRIP, …); ``expiry`` (Y, M, D, h, m, s) meter
    local time after which the meter ignores the command. L = 16 (protocols.md §3)."""
    if op not in RELAY_OPS:
        raise UsageError(f"not a 1CH relay operation: 0x{op:02X}")
    data = _credentials(password, operator) + bytes([op, 0]) + datetime_bytes(*expiry)
    return Frame(normalise_address(address), C_RELAY, data)


def broadcast_time_request(when: tuple[int, int, int, int, int, int]) -> Frame:
    """08H broadcast time (Y, M, D, h, m, s meter local time); meters do not reply."""
    return Frame(BROADCAST, C_BROADCAST_TIME, datetime_bytes(*when))


# --- replies (slave side, and checking them on the master side) ------------------------------


def read_reply(address: str, di: int, data: bytes, more: bool = False) -> Frame:
    """Normal reply to 11H: DI then data; ``more`` sets the follow-up bit."""
    control = C_READ | REPLY | (FOLLOWUP if more else 0)
    return Frame(address, control, _di_bytes(di) + data)


def read_followup_reply(address: str, di: int, data: bytes, seq: int, more: bool) -> Frame:
    """Normal reply to 12H: DI, data, then the sequence number."""
    control = C_READ_FOLLOWUP | REPLY | (FOLLOWUP if more else 0)
    return Frame(address, control, _di_bytes(di) + data + bytes([seq & 0xFF]))


def ack_reply(address: str, function: int) -> Frame:
    """Normal reply without data (14H write, 1CH relay)."""
    return Frame(address, function | REPLY, b"")


def error_reply(address: str, function: int, err: int) -> Frame:
    """Abnormal reply with its ERR byte."""
    return Frame(address, function | REPLY | ABNORMAL, bytes([err & 0xFF]))


def answers(request: Frame, reply: Frame) -> bool:
    """True if ``reply`` is a meter's answer to ``request`` (direction, function, address)."""
    if not reply.is_reply or reply.function != request.function:
        return False
    return request.address == WILDCARD or reply.address == request.address


def check_reply(request: Frame, reply: Frame) -> bytes:
    """The data of a normal reply to ``request``; raises the typed error of an abnormal one."""
    if not answers(request, reply):
        raise FrameError(f"frame C=0x{reply.control:02X} from {reply.address} does not answer")
    if reply.is_abnormal:
        if len(reply.data) != 1:
            raise FrameError(f"abnormal reply must carry one ERR byte (got {len(reply.data)})")
        err = reply.data[0]
        if err & 0x04:
            raise Dlt645UnauthorizedError(
                request.function,
                err,
                f"meter {reply.address} refused 0x{request.function:02X}: password wrong or not "
                "authorised (ESAM meters need an encrypted command; check the password level)",
            )
        raise Dlt645ErrorReply(request.function, err)
    return reply.data


def parse_read_reply(request: Frame, reply: Frame) -> tuple[bytes, bool]:
    """(data after the DI, more parts follow) of a reply to an 11H or 12H read."""
    data = check_reply(request, reply)
    if len(data) < 4 or data[:4] != request.data[:4]:
        raise FrameError(f"read reply from {reply.address} does not echo the DI")
    body = data[4:]
    if request.function == C_READ_FOLLOWUP:
        if not body:
            raise FrameError("follow-up reply lacks its sequence byte")
        body = body[:-1]
    return body, reply.has_followup


# --- data identifiers ------------------------------------------------------------------------


class DataItem(NamedTuple):
    """What a DI holds: ``fields`` values of ``size`` bytes each; ``kind`` is ``bcd`` (raw BCD integer
    in ``unit``), ``bits`` (binary word, lowest byte first), ``datetime`` (YYMMDDWWhhmmss) or
    ``number`` (12-digit BCD identity)."""

    name: str
    fields: int
    size: int
    signed: bool
    kind: str
    unit: str


_E = ("bcd", "10Wh")  # XXXXXX.XX kWh: 0.01 kWh = 10 Wh
_M = ("bcd", "fen")  # XXXXXX.XX yuan: 0.01 yuan

ITEMS: dict[int, DataItem] = {
    0x00000000: DataItem("combined_active_energy", 1, 4, False, *_E),
    0x00010000: DataItem("forward_active_energy", 1, 4, False, *_E),
    0x00010100: DataItem("forward_active_energy_sharp", 1, 4, False, *_E),
    0x00010200: DataItem("forward_active_energy_peak", 1, 4, False, *_E),
    0x00010300: DataItem("forward_active_energy_flat", 1, 4, False, *_E),
    0x00010400: DataItem("forward_active_energy_valley", 1, 4, False, *_E),
    0x0001FF00: DataItem("forward_active_energy_block", 5, 4, False, *_E),
    0x02010100: DataItem("voltage_a", 1, 2, False, "bcd", "dV"),
    0x02010200: DataItem("voltage_b", 1, 2, False, "bcd", "dV"),
    0x02010300: DataItem("voltage_c", 1, 2, False, "bcd", "dV"),
    0x0201FF00: DataItem("voltage_block", 3, 2, False, "bcd", "dV"),
    0x02020100: DataItem("current_a", 1, 3, True, "bcd", "mA"),
    0x02020200: DataItem("current_b", 1, 3, True, "bcd", "mA"),
    0x02020300: DataItem("current_c", 1, 3, True, "bcd", "mA"),
    0x0202FF00: DataItem("current_block", 3, 3, True, "bcd", "mA"),
    0x02030000: DataItem("active_power_total", 1, 3, True, "bcd", "100mW"),
    0x02800002: DataItem("frequency", 1, 2, False, "bcd", "cHz"),
    0x00900200: DataItem("remaining_amount", 1, 4, False, *_M),
    0x00900201: DataItem("overdraft_amount", 1, 4, False, *_M),
    0x04001001: DataItem("alarm_amount_1", 1, 4, False, *_M),
    0x04001002: DataItem("alarm_amount_2", 1, 4, False, *_M),
    0x04001003: DataItem("overdraft_limit", 1, 4, False, *_M),
    0x04001004: DataItem("hoarding_cap", 1, 4, False, *_M),
    0x04001005: DataItem("close_allowed_amount", 1, 4, False, *_M),
    0x04000503: DataItem("status_word_3", 1, 2, False, "bits", "bits"),
    0x0400010C: DataItem("date_time", 1, 7, False, "datetime", "YYMMDDWWhhmmss"),
    0x04000401: DataItem("communication_address", 1, 6, False, "number", "digits"),
    0x04000402: DataItem("meter_number", 1, 6, False, "number", "digits"),
}

DI_ENERGY_BLOCK = 0x0001FF00
DI_VOLTAGES = 0x0201FF00
DI_CURRENTS = 0x0202FF00
DI_POWER = 0x02030000
DI_FREQUENCY = 0x02800002
DI_STATUS3 = 0x04000503
DI_DATETIME = 0x0400010C
DI_REMAINING = 0x00900200


def item(di: int) -> DataItem:
    """The table entry for ``di``; UsageError if gridvend does not know it."""
    try:
        return ITEMS[di]
    except KeyError:
        raise UsageError(f"unknown DL/T 645 data identifier {di:08X}") from None


def decode_item(di: int, data: bytes) -> list[int]:
    """The fields of ``di`` as integers in the item's unit. A date-time gives
    [year, month, day, weekday, hour, minute, second]; a number gives its digits as an int."""
    spec = item(di)
    if len(data) != spec.fields * spec.size:
        raise FrameError(f"DI {di:08X} carries {spec.fields * spec.size} bytes (got {len(data)})")
    if spec.kind == "bits":
        return [int.from_bytes(data, "little")]
    if spec.kind == "datetime":
        ss, mm, hh, ww, dd, mo, yy = (bcd_decode(data[i : i + 1]) for i in range(7))
        return [2000 + yy, mo, dd, ww, hh, mm, ss]
    return [
        bcd_decode(data[i * spec.size : (i + 1) * spec.size], spec.signed)
        for i in range(spec.fields)
    ]


def encode_item(di: int, values: list[int]) -> bytes:
    """The inverse of :func:`decode_item` (the simulator answers with it)."""
    spec = item(di)
    if spec.kind == "bits":
        return values[0].to_bytes(spec.size, "little")
    if spec.kind == "datetime":
        year, mo, dd, ww, hh, mm, ss = values
        return b"".join(bcd_encode(v, 1) for v in (ss, mm, hh, ww, dd, mo, year - 2000))
    if len(values) != spec.fields:
        raise UsageError(f"DI {di:08X} has {spec.fields} fields (got {len(values)})")
    return b"".join(bcd_encode(v, spec.size, spec.signed) for v in values)
