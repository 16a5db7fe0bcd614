"""The collector's error tree. Raised, never returned; each message says what was wrong and what
to do::

    EdgeError
    ├── ConfigError        (also a ValueError) edge.toml, the key file, a bus URL, model,
    │                      address or option, a bus command for a meter not on it: names the key
    ├── StoreError         the store cannot be used as asked (a newer schema, a damaged value,
    │   │                  a transaction inside another)
    │   └── StoreLocked    another agent holds this store (its ``.lock``)
    ├── LinkRefused        (also a ConnectionError) the broker answered CONNECT with a refusal
    └── BusError           the field bus, above the codec
        ├── NoAnswerError  (also a TimeoutError) the meter said nothing within the timeout
        ├── LinkError      (also a ConnectionError) the serial port / TCP server is unusable
        └── UnsupportedError  the model cannot do that (relay control on a metering instrument)

Beside it, raised through the edge but drawn where they are defined:

- ``edge.core.errors.EngineError`` (a ``ValueError``): the engine refuses an event or a setting
  (the MicroPython subset in edge/core cannot import this module);
- ``shared.codec.errors.CodecError``: what a meter or the cloud sent (``ProtocolError``:
  ``ChecksumError`` after the retries, ``ModbusExceptionError``, ``Dlt645ErrorReply`` /
  ``Dlt645UnauthorizedError``, ``EnvelopeError``), or a frame we could not build (``UsageError``);
- ``shared.broker.BrokerError`` (a ``ValueError``): the broker settings cannot be used.

``gridvend edge run`` exits 2 for a ConfigError, EngineError, StoreError or BrokerError at
start-up, 1 when the store is locked or the last commit at shutdown failed.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base of the collector's own errors."""


class ConfigError(EdgeError, ValueError):
    """Bad configuration: the message names the key, URL, model or address, and the fix."""


class StoreError(EdgeError):
    """The store cannot be used as asked (newer schema, damaged value, misuse)."""


class StoreLocked(StoreError):
    """Another agent holds this store."""


class LinkRefused(EdgeError, ConnectionError):
    """The broker answered CONNECT with a refusal (bad credentials, not authorised)."""


class BusError(EdgeError):
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
