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

from dataclasses import dataclass, field

from cloud.notify.sms import gsm7
from cloud.notify.sms.fields import (
    PduDecodeError,
    PduEncodeError,
    PduError,
    Reader,
    encode_address,
    encode_smsc,
    encode_timestamp,
    from_hex,
    read_address,
    read_smsc,
    read_timestamp,
)

__all__ = ["PduDecodeError", "PduEncodeError", "PduError"]

# TP-Status (TS 23.040 §9.2.3.15): what a status report says about the message.
DELIVERED, PENDING, FAILED = "delivered", "pending", "failed"


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
    r: Reader, udl: int, encoding: str, udhi: bool
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


def decode_submit(pdu_hex: str, has_smsc: bool = True) -> Submit:
    """An SMS-SUBMIT from its hex string (with the SMSC field first, as sent after the
    ``AT+CMGS`` prompt, unless ``has_smsc`` is false)."""
    r = Reader(from_hex(pdu_hex))
    smsc = read_smsc(r) if has_smsc else None
    fo = r.byte("first octet")
    if fo & 0x03 != 0x01:
        raise PduDecodeError(f"first octet {fo:02X} is not an SMS-SUBMIT")
    mr = r.byte("message reference")
    number = read_address(r, "destination address")
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
    data = from_hex(pdu_hex)
    r = Reader(data)
    smsc = None
    if tpdu_length is None or len(data) > tpdu_length:
        smsc = read_smsc(r)
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
    recipient = read_address(r, "recipient address")
    sc_ts = read_timestamp(r, "service centre time stamp")
    discharge_ts = read_timestamp(r, "discharge time")
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
