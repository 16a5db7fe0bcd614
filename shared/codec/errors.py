"""The codec error tree. Two families, as in h11: we misused the codec, or the peer sent garbage.

::

    CodecError
    ├── UsageError                 we asked for something the protocol cannot say (bad address,
    │                              value out of range, frame too long); a bug on our side
    └── ProtocolError              the other side sent something we cannot accept
        ├── FrameError             not a well-formed frame (length, start/end bytes, BCD)
        │   └── ChecksumError      well-formed but the checksum / CRC does not match
        ├── ReplyError             a well-formed reply that says "error"
        │   ├── ModbusExceptionError   Modbus exception reply (function | 0x80, exception code)
        │   └── Dlt645ErrorReply       DL/T 645 abnormal reply (C | 0xC0, ERR byte)
        │       └── Dlt645UnauthorizedError  ERR bit 2: authorisation refused (ESAM meters)
        ├── EnvelopeError          a sync envelope the receiver refuses
        │   ├── MalformedError     cannot be parsed (short, bad magic, bad version, bad body)
        │   ├── UnknownKeyError    the key id is not one the receiver holds
        │   ├── ForgedError        the GCM tag does not verify: tampered, forged or wrong key
        │   └── ReplayError        sequence number already seen, or older than the window
        └── TopicError             an MQTT topic that is not one of ours (shared/topics.py)

Every error carries a message that says what was wrong; nothing returns ``None`` for failure.
"""

from __future__ import annotations


class CodecError(Exception):
    """Base of every codec error."""


class UsageError(CodecError, ValueError):
    """The caller asked the codec for something the protocol cannot express."""


class ProtocolError(CodecError):
    """The peer sent something we cannot accept."""


class FrameError(ProtocolError):
    """Not a well-formed frame."""


class ChecksumError(FrameError):
    """A frame whose checksum (DL/T 645) or CRC (Modbus RTU) does not match."""


class ReplyError(ProtocolError):
    """A well-formed reply that reports an error."""


class ModbusExceptionError(ReplyError):
    """A Modbus exception reply: function code with the high bit set, plus an exception code."""

    def __init__(self, function: int, code: int, message: str | None = None) -> None:
        self.function = function
        self.code = code
        super().__init__(message or f"Modbus exception {code} for function 0x{function:02X}")


# DL/T 645-2007 ERR byte bits (an abnormal reply carries one ERR byte), protocols.md §3.
DLT645_ERR_BITS: dict[int, str] = {
    0: "other error",
    1: "no data requested",
    2: "password wrong / not authorised",
    3: "baud rate cannot be changed",
    4: "too many year time zones",
    5: "too many day time periods",
    6: "too many tariffs",
}


class Dlt645ErrorReply(ReplyError):
    """A DL/T 645 abnormal reply (control byte | 0xC0) with its ERR byte decoded."""

    def __init__(self, function: int, err: int, message: str | None = None) -> None:
        self.function = function
        self.err = err
        self.reasons = [text for bit, text in DLT645_ERR_BITS.items() if err & (1 << bit)]
        detail = ", ".join(self.reasons) or "unspecified"
        super().__init__(message or f"DL/T 645 error reply to 0x{function:02X}: {detail}")


class Dlt645UnauthorizedError(Dlt645ErrorReply):
    """ERR bit 2: the meter refused for lack of authorisation (many State Grid meters demand an
    ESAM-encrypted command; plain 1CH relay control works only where the meter allows it)."""


class EnvelopeError(ProtocolError):
    """A sync envelope the receiver refuses. Nothing it carries is applied."""


class MalformedError(EnvelopeError):
    """The envelope cannot be parsed."""


class UnknownKeyError(EnvelopeError):
    """The envelope names a key id the receiver does not hold."""


class ForgedError(EnvelopeError):
    """The authentication tag does not verify (tampered, forged, or sealed with another key)."""


class ReplayError(EnvelopeError):
    """The sequence number was already accepted, or is older than the replay window."""


class TopicError(ProtocolError):
    """A message arrived on a topic that is not ``gridvend/v1/{site}/{gateway}/up|down|status``."""
