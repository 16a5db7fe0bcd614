"""Modbus TCP framing (MBAP header), sans-I/O. PDUs are the ones in :mod:`modbus_rtu`.

::

    offset size field
    0      2    transaction id (echoed by the server)
    2      2    protocol id, always 0
    4      2    length of what follows (unit id + PDU)
    6      1    unit id (the device id behind a gateway)
    7      …    PDU

TCP delivers bytes reliably, so there is no CRC; a header that cannot be right (protocol id not
0, length out of range) is a FrameError and the stream cannot be resynchronised: the caller
drops the connection.
"""

from __future__ import annotations

from typing import NamedTuple

from shared.codec.errors import FrameError, UsageError

HEADER_BYTES = 7
MAX_PDU_BYTES = 253


class Adu(NamedTuple):
    """One Modbus TCP frame, decoded."""

    transaction_id: int
    unit_id: int
    pdu: bytes


def encode(transaction_id: int, unit_id: int, pdu: bytes) -> bytes:
    """One MBAP frame."""
    if not 0 <= transaction_id <= 0xFFFF:
        raise UsageError(f"transaction id must be 0..65535 (got {transaction_id})")
    if not 0 <= unit_id <= 0xFF:
        raise UsageError(f"unit id must be 0..255 (got {unit_id})")
    if not 1 <= len(pdu) <= MAX_PDU_BYTES:
        raise UsageError(f"PDU must be 1..{MAX_PDU_BYTES} bytes (got {len(pdu)})")
    return (
        transaction_id.to_bytes(2, "big")
        + b"\x00\x00"
        + (len(pdu) + 1).to_bytes(2, "big")
        + bytes([unit_id])
        + pdu
    )


class Decoder:
    """Stream decoder: ``feed(bytes)`` returns the complete frames; raises FrameError on a header
    that cannot be Modbus TCP (the connection is then unusable)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Adu]:
        """Add bytes; return the frames now complete."""
        self._buf += data
        out: list[Adu] = []
        while len(self._buf) >= HEADER_BYTES:
            protocol = int.from_bytes(self._buf[2:4], "big")
            length = int.from_bytes(self._buf[4:6], "big")
            if protocol != 0:
                self._buf.clear()
                raise FrameError(f"Modbus TCP protocol id must be 0 (got {protocol})")
            if not 2 <= length <= MAX_PDU_BYTES + 1:
                self._buf.clear()
                raise FrameError(f"Modbus TCP length {length} is out of range 2..254")
            total = 6 + length
            if len(self._buf) < total:
                break
            frame = bytes(self._buf[:total])
            del self._buf[:total]
            out.append(Adu(int.from_bytes(frame[0:2], "big"), frame[6], frame[7:]))
        return out
