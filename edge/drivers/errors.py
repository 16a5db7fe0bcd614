"""Errors of the field bus above the codec. The codec's own tree (shared/codec/errors.py) covers
what a meter sends; these cover the line and the caller::

    BusError
    ├── NoAnswerError   (also a TimeoutError) the meter said nothing within the timeout
    ├── LinkError       (also a ConnectionError) the serial port / TCP server cannot be used
    ├── UnsupportedError  the model cannot do that (e.g. relay control on a metering instrument)
    └── ConfigError     (also a ValueError) a bad URL, model, address or option: names it

A command through the bus raises one of these, or a codec ProtocolError (ChecksumError after the
retries, ModbusExceptionError, Dlt645ErrorReply / UnauthorizedError).
"""

from __future__ import annotations


class BusError(Exception):
    """Base of the field-bus errors."""


class NoAnswerError(BusError, TimeoutError):
    """The meter did not answer in time."""

    def __init__(self, address: object, where: str, timeout_ms: int) -> None:
        self.address = address
        self.timeout_ms = timeout_ms
        super().__init__(f"meter {address} on {where} did not answer within {timeout_ms} ms")


class LinkError(BusError, ConnectionError):
    """The line itself (serial port, TCP connection) is unusable right now."""


class UnsupportedError(BusError):
    """The meter model cannot perform the operation."""


class ConfigError(BusError, ValueError):
    """Bad configuration: the message names the key, URL, model or address."""
