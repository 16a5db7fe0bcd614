"""Meter drivers: one file per model, register maps as data, a registry by model name, and the
factory that opens a line for a model.

::

    from edge import drivers
    driver = drivers.get("acrel-ddsy1352")                      # or "acrel-adl400", "dlt645"
    client = drivers.open_transport("tcp://10.0.0.5:4001", model="acrel-ddsy1352", baud=9600)
    reading = await driver.read(client, 5, now=int(time.time()))

URLs: ``tcp://host:port`` (RTU over TCP, i.e. a serial device server; DL/T 645 frames likewise),
``modbus-tcp://host:port`` (Modbus TCP, MBAP), or a serial device path (``/dev/ttyUSB0``, a pty)
with ``baud``/``parity``/``stop_bits``. Defaults come from the model (9600 8N1 for Modbus, 2400
8E1 for DL/T 645). To add a model, copy ``_blueprint.py``.
"""

from __future__ import annotations

import importlib
from typing import Any, TypedDict
from urllib.parse import urlsplit

from edge.drivers.base import OPS, Driver
from edge.drivers.clients import Dlt645Client, LineClient, ModbusRtuClient, ModbusTcpClient
from edge.drivers.link import SerialLink, TcpLink
from edge.errors import ConfigError

# model name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "acrel-ddsy1352": "edge.drivers.acrel_ddsy1352:AcrelDdsy1352",
    "acrel-dtsy1352": "edge.drivers.acrel_ddsy1352:AcrelDdsy1352",
    "acrel-adl400": "edge.drivers.acrel_adl400:AcrelAdl400",
    "acrel-dtsd1352": "edge.drivers.acrel_adl400:AcrelAdl400",
    "dlt645": "edge.drivers.dlt645:Dlt645",
}

__all__ = ["OPS", "Driver", "driver_class", "get", "models", "open_transport", "parse_url"]


def models() -> list[str]:
    """Every model name the registry knows (aliases included)."""
    return sorted(_REGISTRY)


def driver_class(model: str) -> type[Driver]:
    """The driver class for ``model``; ConfigError naming the model if unknown."""
    try:
        target = _REGISTRY[model]
    except KeyError:
        raise ConfigError(f"unknown meter model {model!r} (known: {', '.join(models())})") from None
    module, name = target.split(":")
    cls: type[Driver] = getattr(importlib.import_module(module), name)
    return cls


def get(model: str, **options: Any) -> Driver:
    """A driver instance for ``model`` with its options (unknown keys are a ConfigError)."""
    return driver_class(model)(**options)


def parse_url(url: str) -> tuple[str, str, int]:
    """(kind, host or path, port): kind is ``tcp``, ``modbus-tcp`` or ``serial``."""
    text = str(url).strip()
    if "://" not in text:
        if not text:
            raise ConfigError("bus URL is empty")
        return "serial", text, 0
    parts = urlsplit(text)
    if parts.scheme == "serial":
        return "serial", parts.path, 0
    if parts.scheme not in ("tcp", "modbus-tcp"):
        raise ConfigError(
            f"bus URL {url!r}: scheme must be tcp:// (RTU over TCP), modbus-tcp:// "
            "or a serial device path"
        )
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        raise ConfigError(f"bus URL {url!r} needs host:port")
    return parts.scheme, parts.hostname, port


class _Line(TypedDict):
    """The line settings every client takes."""

    baud: int
    parity: str
    stop_bits: int
    gap_ms: float | None
    answer_ms: int | None


def open_transport(
    url: str,
    *,
    model: str | Driver,
    baud: int | None = None,
    parity: str | None = None,
    stop_bits: int = 1,
    gap_ms: float | None = None,
    answer_ms: int | None = None,
    connect_timeout_ms: int = 3000,
) -> LineClient:
    """The client for one line (nothing is opened until first use). ``model`` picks the
    protocol and the default baud/parity. ``gap_ms`` overrides the inter-frame gap (t3.5),
    ``answer_ms`` the time a meter gets to answer beyond the wire time."""
    driver = model if isinstance(model, Driver) else driver_class(model)
    baud = baud or driver.default_baud
    parity = (parity or driver.default_parity).upper()
    if parity not in ("N", "E", "O"):
        raise ConfigError(f"parity must be N, E or O (got {parity!r})")
    if not isinstance(baud, int) or baud <= 0:
        raise ConfigError(f"baud must be a positive integer (got {baud!r})")
    kind, where, port = parse_url(url)
    link: TcpLink | SerialLink
    if kind == "serial":
        link = SerialLink(where, baud, parity, stop_bits, connect_timeout_ms)
    else:
        link = TcpLink(where, port, str(url), connect_timeout_ms)
    line = _Line(baud=baud, parity=parity, stop_bits=stop_bits, gap_ms=gap_ms, answer_ms=answer_ms)
    if driver.protocol == "dlt645":
        if kind == "modbus-tcp":
            raise ConfigError(f"{url}: DL/T 645 meters cannot be reached over Modbus TCP")
        return Dlt645Client(link, **line)
    if kind == "modbus-tcp":
        return ModbusTcpClient(link, **line)
    return ModbusRtuClient(link, **line)
