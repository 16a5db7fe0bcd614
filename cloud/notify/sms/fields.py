"""PDU fields (3GPP TS 23.040 §9.1.2): addresses, the SMSC field, time stamps, and a
bounds-checked reader. Pure: no I/O. Shared by the SUBMIT and STATUS-REPORT codecs in
``pdu``."""

from __future__ import annotations

import binascii

from cloud.notify.sms import gsm7


class PduError(ValueError):
    """Base of the PDU errors."""


class PduEncodeError(PduError):
    """The caller asked for a PDU that cannot exist (bad number, text too long)."""


class PduDecodeError(PduError):
    """The bytes are not a valid PDU of the kind expected."""


def _semi_octets(digits: str) -> bytes:
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def _digits(data: bytes, count: int) -> str:
    out = []
    for b in data:
        out.append("0123456789*#abc"[b & 0x0F] if (b & 0x0F) != 0x0F else "")
        out.append("0123456789*#abc"[b >> 4] if (b >> 4) != 0x0F else "")
    return "".join(out)[:count]


def _check_number(number: str, what: str) -> tuple[int, str]:
    digits = number[1:] if number.startswith("+") else number
    if not digits or len(digits) > 20 or not digits.isdigit() or not digits.isascii():
        raise PduEncodeError(f"{what} {number!r} is not a phone number (digits, optional +)")
    return (0x91 if number.startswith("+") else 0x81), digits


def encode_address(number: str) -> bytes:
    """TP-DA / TP-RA: digit count, type of address (0x91 international when ``+``, else 0x81),
    semi-octets."""
    toa, digits = _check_number(number, "number")
    return bytes((len(digits), toa)) + _semi_octets(digits)


def encode_smsc(number: str | None) -> bytes:
    """The SMSC field before the TPDU: ``00`` for the SIM's default centre, else length in
    octets (type octet included), type, semi-octets."""
    if not number:
        return b"\x00"
    toa, digits = _check_number(number, "SMSC")
    body = bytes((toa,)) + _semi_octets(digits)
    return bytes((len(body),)) + body


class Reader:
    """A cursor over PDU bytes; running off the end is a ``PduDecodeError``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise PduDecodeError(f"PDU ends inside {what} (offset {self.pos}, needs {n} octets)")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def left(self) -> int:
        return len(self.data) - self.pos


def read_address(r: Reader, what: str) -> str:
    count = r.byte(f"{what} length")
    toa = r.byte(f"{what} type")
    if count > 20:
        raise PduDecodeError(f"{what} has {count} digits; at most 20 are possible")
    raw = r.take((count + 1) // 2, what)
    if (toa >> 4) & 0x07 == 0x05:  # alphanumeric (TS 23.040 §9.1.2.5): packed GSM septets
        return gsm7.from_septets(gsm7.unpack(raw, count * 4 // 7))
    digits = _digits(raw, count)
    return ("+" + digits) if (toa >> 4) & 0x07 == 0x01 else digits


def read_smsc(r: Reader) -> str | None:
    n = r.byte("SMSC length")
    if n == 0:
        return None
    raw = r.take(n, "SMSC")
    digits = _digits(raw[1:], 2 * (n - 1))
    return ("+" + digits) if (raw[0] >> 4) & 0x07 == 0x01 else digits


def _days_from_civil(y: int, m: int, d: int) -> int:
    # Howard Hinnant's algorithm: days since 1970-01-01 of a proleptic Gregorian date.
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def read_timestamp(r: Reader, what: str) -> int:
    """TP-SCTS / TP-DT (§9.2.3.11): YY MM DD hh mm ss as swapped BCD, then the zone in quarter
    hours with its sign in bit 3. Returned as UTC epoch seconds."""
    raw = r.take(7, what)
    fields = []
    for b in raw[:6]:
        lo, hi = b & 0x0F, b >> 4
        if lo > 9 or hi > 9:
            raise PduDecodeError(f"{what} has a non-decimal digit ({b:02X})")
        fields.append(lo * 10 + hi)
    yy, mo, dd, hh, mi, ss = fields
    if not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 60):
        raise PduDecodeError(f"{what} is not a valid time ({raw.hex().upper()})")
    tz = raw[6]
    quarters = (tz & 0x07) * 10 + (tz >> 4)
    if (tz >> 4) > 9:
        raise PduDecodeError(f"{what} has a non-decimal time zone ({tz:02X})")
    offset_s = quarters * 900 * (-1 if tz & 0x08 else 1)
    local = _days_from_civil(2000 + yy, mo, dd) * 86400 + hh * 3600 + mi * 60 + ss
    return local - offset_s


def encode_timestamp(ts: int, tz_quarters: int = 32) -> bytes:
    """The 7-octet timestamp of UTC epoch ``ts`` in a zone ``tz_quarters`` quarter hours east
    (32 = UTC+8, China)."""
    if not -79 <= tz_quarters <= 79:
        raise PduEncodeError(f"time zone {tz_quarters} quarter hours is out of range (±79)")
    local = ts + tz_quarters * 900
    days, rem = divmod(local, 86400)
    y, m, d = _civil_from_days(days)
    if not 2000 <= y <= 2099:
        raise PduEncodeError(f"year {y} cannot be written in a two-digit SMS timestamp")
    values = (y - 2000, m, d, rem // 3600, rem % 3600 // 60, rem % 60)
    out = bytes((v % 10) << 4 | v // 10 for v in values)
    q = abs(tz_quarters)
    zone = ((q % 10) << 4) | (q // 10) | (0x08 if tz_quarters < 0 else 0)
    return out + bytes((zone,))


def from_hex(text: str) -> bytes:
    try:
        return binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        raise PduDecodeError("not a hexadecimal PDU string") from None
