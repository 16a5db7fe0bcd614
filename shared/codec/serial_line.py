"""Serial line timing, in integer microseconds (protocols.md §4).

A character on an asynchronous serial line is a start bit, 8 data bits, an optional parity bit
and one or two stop bits: 10 bits at 8N1, 11 at 8E1 / 8O1 / 8N2. Modbus RTU separates frames by
3.5 character times of silence (t3.5); above 19200 baud the spec fixes t3.5 at 1750 µs.

Everything here is integer arithmetic (rounded up: a wait that is one microsecond too short can
cut a frame in two, one that is too long costs nothing measurable).
"""

from __future__ import annotations

from shared.codec.errors import UsageError

PARITIES = ("N", "E", "O")


def bits_per_char(parity: str = "N", stop_bits: int = 1, data_bits: int = 8) -> int:
    """Bits one character takes on the wire: start + data + parity + stop."""
    if parity not in PARITIES:
        raise UsageError(f"parity must be one of N, E, O (got {parity!r})")
    if stop_bits not in (1, 2):
        raise UsageError(f"stop bits must be 1 or 2 (got {stop_bits!r})")
    return 1 + data_bits + (0 if parity == "N" else 1) + stop_bits


def char_time_us(baud: int, bits: int = 10) -> int:
    """One character's time on the wire, in µs (rounded up)."""
    _check_baud(baud)
    return -(-bits * 1_000_000 // baud)


def t35_us(baud: int, bits: int = 10) -> int:
    """The Modbus RTU inter-frame silence (3.5 characters; 1750 µs above 19200 baud)."""
    _check_baud(baud)
    if baud > 19200:
        return 1750
    return -(-7 * bits * 1_000_000 // (2 * baud))


def wire_time_us(nbytes: int, baud: int, bits: int = 10) -> int:
    """Time to send ``nbytes`` back to back at ``baud``, in µs (rounded up)."""
    _check_baud(baud)
    return -(-nbytes * bits * 1_000_000 // baud)


def transaction_time_us(
    request_bytes: int, reply_bytes: int, baud: int, bits: int = 10, turnaround_us: int = 0
) -> int:
    """The floor of one request/reply exchange on a half-duplex line: the request on the wire,
    the slave's t3.5 to see the request ended, its turnaround, the reply on the wire, and the
    master's t3.5 before the next request may start."""
    return (
        wire_time_us(request_bytes + reply_bytes, baud, bits)
        + 2 * t35_us(baud, bits)
        + turnaround_us
    )


def _check_baud(baud: int) -> None:
    if not isinstance(baud, int) or baud <= 0:
        raise UsageError(f"baud must be a positive integer (got {baud!r})")
