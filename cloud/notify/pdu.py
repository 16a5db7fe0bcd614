"""SMS PDUs (3GPP TS 23.040) for a modem in PDU mode (TS 27.005 ``AT+CMGF=0``). Sans-I/O: bytes
and hex strings in, values out; no clock, no port.

Theory of operation
-------------------
``encode_submit(number, text)`` gives one ``SubmitPdu`` per segment: its ``hex`` is what follows
the ``> `` prompt of ``AT+CMGS=<tpdu_length>`` (the SMSC field first, ``00`` = the SIM's
default centre, then the TPDU). A text in the GSM alphabet goes as 7-bit (160 characters, 153 a
segment), anything else as UCS2 (70 / 67); several segments carry a concatenation header
``05 00 03 <ref> <total> <seq>`` and set TP-UDHI. TP-SRR asks for a status report, which the
modem hands over as ``+CDS: <length>\\r\\n<pdu>`` (``AT+CNMI=2,1,0,1,0``);
``decode_status_report`` reads it, matched to the message on TP-MR (the reference the modem
returned in ``+CMGS: <mr>``). ``decode_submit`` and ``encode_status_report`` are the other
directions, for a simulated modem and for round-trip tests.

Two error families: ``PduEncodeError`` (we asked for something impossible: a bad number, a text
too long) and ``PduDecodeError`` (the peer sent bytes that are not a valid PDU). Decoding any
input either succeeds or raises ``PduDecodeError``.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field

from cloud.notify import gsm7

# TP-Status (TS 23.040 §9.2.3.15): what a status report says about the message.
DELIVERED, PENDING, FAILED = "delivered", "pending", "failed"


class PduError(ValueError):
    """Base of the PDU errors."""


class PduEncodeError(PduError):
    """The caller asked for a PDU that cannot exist (bad number, text too long)."""


class PduDecodeError(PduError):
    """The bytes are not a valid PDU of the kind expected."""


@dataclass(frozen=True)
class SubmitPdu:
    """One segment ready for ``AT+CMGS``: ``hex`` (SMSC field + TPDU) and ``tpdu_length`` (the
    octets after the SMSC field, which is what ``AT+CMGS=`` takes)."""

    hex: str
    tpdu_length: int
    seq: int = 1
    total: int = 1


@dataclass(frozen=True)
class Submit:
    """A decoded SMS-SUBMIT."""

    number: str
    text: str
    mr: int
    status_report: bool
    encoding: str
    smsc: str | None = None
    validity_vp: int | None = None
    concat: tuple[int, int, int] | None = None  # (ref, total, seq)
    reject_duplicates: bool = False


@dataclass(frozen=True)
class StatusReport:
    """A decoded SMS-STATUS-REPORT. Times are UTC epoch seconds."""

    mr: int
    recipient: str
    sc_ts: int
    discharge_ts: int
    status: int
    smsc: str | None = None
    extra: dict[str, int] = field(default_factory=dict, compare=False)

    @property
    def outcome(self) -> str:
        """``delivered`` (0x00-0x1F: transaction completed), ``pending`` (0x20-0x3F: a
        temporary error, the centre keeps trying) or ``failed`` (0x40 and above: permanent, or
        temporary with no more attempts)."""
        return status_outcome(self.status)


def status_outcome(status: int) -> str:
    if status < 0x20:
        return DELIVERED
    if status < 0x40:
        return PENDING
    return FAILED


# ---------------------------------------------------------------- addresses and timestamps


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


class _Reader:
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


def _read_address(r: _Reader, what: str) -> str:
    count = r.byte(f"{what} length")
    toa = r.byte(f"{what} type")
    if count > 20:
        raise PduDecodeError(f"{what} has {count} digits; at most 20 are possible")
    raw = r.take((count + 1) // 2, what)
    if (toa >> 4) & 0x07 == 0x05:  # alphanumeric (TS 23.040 §9.1.2.5): packed GSM septets
        return gsm7.from_septets(gsm7.unpack(raw, count * 4 // 7))
    digits = _digits(raw, count)
    return ("+" + digits) if (toa >> 4) & 0x07 == 0x01 else digits


def _read_smsc(r: _Reader) -> str | None:
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


def _read_timestamp(r: _Reader, what: str) -> int:
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


# ---------------------------------------------------------------- SMS-SUBMIT


def _user_data(text: str, encoding: str, udh: bytes) -> tuple[int, bytes]:
    """(TP-UDL, TP-UD). UDL counts septets for GSM 7-bit (header included, rounded up to
    septets with fill bits), octets for UCS2."""
    if encoding == "gsm7":
        septets = gsm7.to_septets(text)
        if not udh:
            return len(septets), gsm7.pack(septets)
        header_bits = len(udh) * 8
        fill = (7 - header_bits % 7) % 7
        return (header_bits + fill) // 7 + len(septets), udh + gsm7.pack(septets, fill)
    body = text.encode("utf-16-be")
    return len(udh) + len(body), udh + body


def encode_submit(
    number: str,
    text: str,
    *,
    mr: int = 0,
    smsc: str | None = None,
    status_report: bool = True,
    validity_vp: int | None = None,
    reject_duplicates: bool = False,
    concat_ref: int = 0,
    encoding: str | None = None,
) -> list[SubmitPdu]:
    """The SMS-SUBMIT PDUs for ``text`` to ``number`` (one per segment).

    ``validity_vp`` is a relative TP-VP octet (``relative_validity`` makes one from minutes);
    ``None`` sends none. ``concat_ref`` (0-255) is the concatenation reference shared by the
    segments of one long message; reuse it when resending a segment so the phone joins it.
    """
    if not 0 <= mr <= 255:
        raise PduEncodeError(f"message reference {mr} is outside 0-255")
    if not 0 <= concat_ref <= 255:
        raise PduEncodeError(f"concatenation reference {concat_ref} is outside 0-255")
    if validity_vp is not None and not 0 <= validity_vp <= 255:
        raise PduEncodeError(f"validity period octet {validity_vp} is outside 0-255")
    try:
        encoding, parts = gsm7.split(text, encoding)
    except gsm7.TextError as exc:
        raise PduEncodeError(str(exc)) from None
    head_smsc = encode_smsc(smsc)
    address = encode_address(number)
    dcs = 0x00 if encoding == "gsm7" else 0x08
    total = len(parts)
    out = []
    for seq, part in enumerate(parts, 1):
        udh = bytes((0x05, 0x00, 0x03, concat_ref, total, seq)) if total > 1 else b""
        fo = 0x01  # TP-MTI SMS-SUBMIT
        fo |= 0x04 if reject_duplicates else 0
        fo |= 0x10 if validity_vp is not None else 0  # TP-VPF relative
        fo |= 0x20 if status_report else 0  # TP-SRR
        fo |= 0x40 if udh else 0  # TP-UDHI
        udl, ud = _user_data(part, encoding, udh)
        vp = bytes((validity_vp,)) if validity_vp is not None else b""
        tpdu = bytes((fo, mr)) + address + bytes((0x00, dcs)) + vp + bytes((udl,)) + ud
        out.append(SubmitPdu((head_smsc + tpdu).hex().upper(), len(tpdu), seq, total))
    return out


def relative_validity(minutes: int) -> int:
    """The smallest relative TP-VP octet (§9.2.3.12.1) covering ``minutes``."""
    if minutes <= 0:
        raise PduEncodeError("a validity period must be at least one minute")
    if minutes <= 720:
        return (minutes + 4) // 5 - 1
    if minutes <= 1440:
        return 143 + (minutes - 720 + 29) // 30
    if minutes <= 30 * 1440:
        return 166 + (minutes + 1439) // 1440
    if minutes <= 63 * 10080:
        return 192 + (minutes + 10079) // 10080
    raise PduEncodeError(f"{minutes} minutes is longer than the longest validity (63 weeks)")


def _alphabet(dcs: int) -> str:
    """TS 23.038 §4: the alphabet a data coding scheme selects."""
    group = dcs >> 4
    if group <= 0x07:  # general data coding (and its automatic-deletion group)
        if dcs & 0x20:
            raise PduDecodeError(f"data coding scheme {dcs:02X} is compressed (not supported)")
        alphabet = (dcs >> 2) & 0x03
    elif group in (0x0C, 0x0D):
        alphabet = 0
    elif group == 0x0E:
        alphabet = 2
    elif group == 0x0F:
        alphabet = 1 if dcs & 0x04 else 0
    else:
        raise PduDecodeError(f"data coding scheme {dcs:02X} is reserved")
    if alphabet == 3:
        raise PduDecodeError(f"data coding scheme {dcs:02X} names a reserved alphabet")
    return ("gsm7", "8bit", "ucs2")[alphabet]


def _read_user_data(
    r: _Reader, udl: int, encoding: str, udhi: bool
) -> tuple[str, tuple[int, int, int] | None]:
    if encoding == "gsm7":
        if udl > 160:
            raise PduDecodeError(f"user data length {udl} septets exceeds 160")
        data = r.take((udl * 7 + 7) // 8, "user data")
    else:
        if udl > 140:
            raise PduDecodeError(f"user data length {udl} octets exceeds 140")
        data = r.take(udl, "user data")
    concat = None
    header_len = 0
    if udhi:
        if not data:
            raise PduDecodeError("TP-UDHI is set but the user data is empty")
        header_len = data[0] + 1
        if header_len > len(data):
            raise PduDecodeError("user data header is longer than the user data")
        concat = _concat_from_header(data[1:header_len])
    if encoding == "gsm7":
        header_bits = header_len * 8
        fill = (7 - header_bits % 7) % 7
        count = udl - (header_bits + fill) // 7
        if count < 0:
            raise PduDecodeError("user data header is longer than the user data length")
        return gsm7.from_septets(gsm7.unpack(data[header_len:], count, fill)), concat
    body = data[header_len:]
    if encoding == "8bit":
        return body.decode("latin-1"), concat
    if len(body) % 2:
        raise PduDecodeError("UCS2 user data has an odd number of octets")
    return body.decode("utf-16-be", errors="replace"), concat


def _concat_from_header(header: bytes) -> tuple[int, int, int] | None:
    """The concatenation element (IEI 00: 8-bit ref, or 08: 16-bit ref) of a user data header."""
    i = 0
    found = None
    while i < len(header):
        if i + 2 > len(header):
            raise PduDecodeError("user data header ends inside an information element")
        iei, length = header[i], header[i + 1]
        value = header[i + 2 : i + 2 + length]
        if len(value) != length:
            raise PduDecodeError(f"information element {iei:02X} is cut short")
        if iei == 0x00 and length == 3:
            found = (value[0], value[1], value[2])
        elif iei == 0x08 and length == 4:
            found = (value[0] << 8 | value[1], value[2], value[3])
        i += 2 + length
    return found


def _from_hex(text: str) -> bytes:
    try:
        return binascii.unhexlify(text.strip())
    except (binascii.Error, ValueError):
        raise PduDecodeError("not a hexadecimal PDU string") from None


def decode_submit(pdu_hex: str, has_smsc: bool = True) -> Submit:
    """An SMS-SUBMIT from its hex string (with the SMSC field first, as sent after the
    ``AT+CMGS`` prompt, unless ``has_smsc`` is false)."""
    r = _Reader(_from_hex(pdu_hex))
    smsc = _read_smsc(r) if has_smsc else None
    fo = r.byte("first octet")
    if fo & 0x03 != 0x01:
        raise PduDecodeError(f"first octet {fo:02X} is not an SMS-SUBMIT")
    mr = r.byte("message reference")
    number = _read_address(r, "destination address")
    r.byte("protocol identifier")
    encoding = _alphabet(r.byte("data coding scheme"))
    vpf = (fo >> 3) & 0x03
    vp = None
    if vpf == 0x02:
        vp = r.byte("validity period")
    elif vpf in (0x01, 0x03):
        r.take(7, "validity period")
    udl = r.byte("user data length")
    text, concat = _read_user_data(r, udl, encoding, bool(fo & 0x40))
    if r.left():
        raise PduDecodeError(f"{r.left()} octets follow the user data")
    return Submit(number, text, mr, bool(fo & 0x20), encoding, smsc, vp, concat, bool(fo & 0x04))


# ---------------------------------------------------------------- SMS-STATUS-REPORT


def decode_status_report(pdu_hex: str, tpdu_length: int | None = None) -> StatusReport:
    """An SMS-STATUS-REPORT from the PDU of a ``+CDS: <length>`` report.

    TS 27.005 puts the SMSC field before the TPDU and ``<length>`` counts the TPDU only; some
    modems leave the SMSC field out. With ``tpdu_length`` the two are told apart by size; without
    it the SMSC field is assumed present.
    """
    data = _from_hex(pdu_hex)
    r = _Reader(data)
    smsc = None
    if tpdu_length is None or len(data) > tpdu_length:
        smsc = _read_smsc(r)
        if tpdu_length is not None and r.left() != tpdu_length:
            raise PduDecodeError(
                f"+CDS length {tpdu_length} does not match the PDU ({r.left()} TPDU octets)"
            )
    elif len(data) < tpdu_length:
        raise PduDecodeError(f"+CDS length {tpdu_length} is more than the PDU's {len(data)} octets")
    fo = r.byte("first octet")
    if fo & 0x03 != 0x02:
        raise PduDecodeError(f"first octet {fo:02X} is not an SMS-STATUS-REPORT")
    mr = r.byte("message reference")
    recipient = _read_address(r, "recipient address")
    sc_ts = _read_timestamp(r, "service centre time stamp")
    discharge_ts = _read_timestamp(r, "discharge time")
    status = r.byte("status")
    if status >= 0x80:
        raise PduDecodeError(f"status {status:02X} is reserved")
    extra: dict[str, int] = {}
    if r.left():  # TP-PI and what it announces (§9.2.3.27); kept when well formed
        extra["parameter_indicator"] = r.byte("parameter indicator")
    return StatusReport(mr, recipient, sc_ts, discharge_ts, status, smsc, extra)


def encode_status_report(
    mr: int,
    recipient: str,
    sc_ts: int,
    discharge_ts: int,
    status: int,
    *,
    smsc: str | None = None,
    tz_quarters: int = 32,
) -> tuple[str, int]:
    """``(hex, tpdu_length)`` of a status report, as a modem would put it in ``+CDS``."""
    if not 0 <= mr <= 255 or not 0 <= status <= 0x7F:
        raise PduEncodeError("message reference must be 0-255 and status 0-127")
    tpdu = (
        bytes((0x06, mr))
        + encode_address(recipient)
        + encode_timestamp(sc_ts, tz_quarters)
        + encode_timestamp(discharge_ts, tz_quarters)
        + bytes((status,))
    )
    return (encode_smsc(smsc) + tpdu).hex().upper(), len(tpdu)
