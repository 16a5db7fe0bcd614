"""The GSM 7-bit default alphabet and its extension table (3GPP TS 23.038 §6.2.1), septet
packing (§6.1.2.1.1), and how a text splits into SMS segments. Pure: no I/O.

A text that fits the GSM alphabet costs one septet a character (two for the extension
characters, which are ESC + a code); anything else goes as UCS2 (UTF-16BE, 2 octets a code
unit). One SMS carries 140 octets of user data: 160 septets or 70 UCS2 units. A concatenated
message spends 6 octets of every segment on the user data header (``05 00 03 ref total seq``),
leaving 153 septets or 67 units a segment (TS 23.040 §9.2.3.24.1).
"""

from __future__ import annotations

# Basic character set, indexed by septet value. 0x1B is the escape to the extension table.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
ESC = 0x1B
# Extension table: character -> code after ESC.
EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
             "]": 0x3E, "|": 0x40, "€": 0x65}  # fmt: skip

_BASIC_CODE = {ch: i for i, ch in enumerate(BASIC) if i != ESC}
_EXTENSION_CHAR = {code: ch for ch, code in EXTENSION.items()}

SINGLE_SEPTETS = 160
SEGMENT_SEPTETS = 153
SINGLE_UCS2_UNITS = 70
SEGMENT_UCS2_UNITS = 67
MAX_SEGMENTS = 255

assert len(BASIC) == 128


class TextError(ValueError):
    """A text that cannot be encoded as asked (a character outside the GSM alphabet where GSM
    was demanded, or more than 255 segments)."""


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM default alphabet or its extension table."""
    return all(ch in _BASIC_CODE or ch in EXTENSION for ch in text)


def to_septets(text: str) -> list[int]:
    """The septet values of ``text`` (extension characters become ESC + code)."""
    out: list[int] = []
    for i, ch in enumerate(text):
        code = _BASIC_CODE.get(ch)
        if code is not None:
            out.append(code)
        elif ch in EXTENSION:
            out.extend((ESC, EXTENSION[ch]))
        else:
            raise TextError(f"character {ch!r} at position {i} is not in the GSM 7-bit alphabet")
    return out


def from_septets(septets: list[int]) -> str:
    """Text from septet values. An ESC before an unknown code gives a space, as TS 23.038
    §6.2.1.1 asks of a receiver; a trailing lone ESC is dropped."""
    out: list[str] = []
    escaped = False
    for s in septets:
        if escaped:
            out.append(_EXTENSION_CHAR.get(s, " "))
            escaped = False
        elif s == ESC:
            escaped = True
        else:
            out.append(BASIC[s & 0x7F])
    return "".join(out)


def pack(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB first into octets, after ``fill_bits`` zero bits (used after a user
    data header so the text starts on a septet boundary)."""
    acc = 0
    pos = fill_bits
    for s in septets:
        acc |= (s & 0x7F) << pos
        pos += 7
    return acc.to_bytes((pos + 7) // 8, "little")


def unpack(data: bytes, count: int, fill_bits: int = 0) -> list[int]:
    """``count`` septets from packed octets, skipping ``fill_bits`` first."""
    acc = int.from_bytes(data, "little") >> fill_bits
    return [(acc >> (7 * i)) & 0x7F for i in range(count)]


def septet_length(text: str) -> int:
    return sum(2 if ch in EXTENSION else 1 for ch in text)


def ucs2_units(text: str) -> int:
    return len(text.encode("utf-16-be")) // 2


def split(text: str, encoding: str | None = None) -> tuple[str, list[str]]:
    """``(encoding, segments)``: ``"gsm7"`` when the text fits the GSM alphabet (or ``encoding``
    forces it), else ``"ucs2"``. One segment when it fits one SMS; otherwise pieces of at most
    153 septets / 67 UCS2 units, never cutting an ESC pair or a UTF-16 surrogate pair."""
    if encoding is None:
        encoding = "gsm7" if is_gsm7(text) else "ucs2"
    if encoding == "gsm7":
        to_septets(text)  # raises with the offending character's position
        cost, single, per = septet_length, SINGLE_SEPTETS, SEGMENT_SEPTETS
    elif encoding == "ucs2":
        cost, single, per = ucs2_units, SINGLE_UCS2_UNITS, SEGMENT_UCS2_UNITS
    else:
        raise TextError(f"unknown encoding {encoding!r}; use gsm7 or ucs2")
    if cost(text) <= single:
        return encoding, [text]
    parts: list[str] = []
    start = used = 0
    for i, ch in enumerate(text):
        c = cost(ch)
        if used + c > per:
            parts.append(text[start:i])
            start, used = i, 0
        used += c
    parts.append(text[start:])
    if len(parts) > MAX_SEGMENTS:
        raise TextError(
            f"the text needs {len(parts)} segments; at most {MAX_SEGMENTS} are possible"
        )
    return encoding, parts
