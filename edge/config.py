"""``edge.toml``: the collector's configuration, read with ``tomllib`` and checked completely at
start-up. An unknown key is an error naming the key and its table; a missing required key or a
wrong type names the key and what it should be. Relative paths are relative to the file.

The schema (every key, its type and default) is the ``_SCHEMA`` tables below and
docs/architecture.md, "Edge agent".
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge import drivers
from edge.errors import ConfigError
from edge.sync import SyncSettings
from shared.broker import Broker
from shared.codec import envelope

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_OFFSET = re.compile(r"^(UTC)?([+-])(\d{1,2}):?(\d{2})$")

# table -> key -> (type(s), default or REQUIRED)
REQUIRED = object()
_TOP: dict[str, tuple[Any, Any]] = {
    "site": (str, REQUIRED),
    "gateway": (str, REQUIRED),
    "timezone": (str, "Asia/Shanghai"),
    "store": (str, REQUIRED),
    "log_level": (str, "info"),
    "broker": (dict, {}),
    "keys": (dict, {}),
    "intervals": (dict, {}),
    "retention": (dict, {}),
    "sync": (dict, {}),
    "defaults": (dict, {}),
    "tariffs": (dict, {}),
    "buses": (list, REQUIRED),
    "meters": (list, []),
}
_BROKER: dict[str, tuple[Any, Any]] = {
    "url": (str, "mqtt://127.0.0.1:1883"),
    "username": (str, None),
    "password": (str, None),
    "ca_file": (str, None),
    "keepalive_s": (int, 30),
}
_KEYS: dict[str, tuple[Any, Any]] = {"file": (str, REQUIRED)}
_INTERVALS: dict[str, tuple[Any, Any]] = {
    "report_s": (int, 30),
    "history_s": (int, 1800),
    "heartbeat_s": ((int, float), 30),
    "tick_s": ((int, float), 60),
    "prune_s": (int, 3600),
}
_RETENTION: dict[str, tuple[Any, Any]] = {
    "history_days": (int, 90),
    "inbox_days": (int, 30),
    "ledger_charges_days": (int, 400),
}
_SYNC: dict[str, tuple[Any, Any]] = {
    "ack_timeout_s": ((int, float), 30),
    "batch_msgs": (int, 200),
    "batch_bytes": (int, 65536),
    "window": (int, 16),
    "rate_msgs_per_s": ((int, float), 5000),
    "backoff_min_s": ((int, float), 0.5),
    "backoff_max_s": ((int, float), 60),
    "connect_timeout_s": ((int, float), 10),
}
_BUS: dict[str, tuple[Any, Any]] = {
    "name": (str, REQUIRED),
    "url": (str, REQUIRED),
    "model": (str, REQUIRED),
    "baud": (int, None),
    "parity": (str, None),
    "stop_bits": (int, 1),
    "driver": (dict, {}),
    "options": (dict, {}),
}
_METER: dict[str, tuple[Any, Any]] = {
    "id": (str, REQUIRED),
    "bus": (str, REQUIRED),
    "address": ((int, str), REQUIRED),
    "ct": (int, 1),
    "pt": (int, 1),
    "settings": (dict, {}),
}


def _typename(kind: Any) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", dict: "a table", list: "a list"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _check_table(raw: Any, schema: dict[str, tuple[Any, Any]], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    for key in raw:
        if key not in schema:
            known = ", ".join(schema)
            raise ConfigError(f"unknown key {key!r} in {where} (known keys: {known})")
    out: dict[str, Any] = {}
    for key, (kind, default) in schema.items():
        if key not in raw:
            if default is REQUIRED:
                raise ConfigError(f"{where} lacks the required key {key!r}")
            out[key] = default
            continue
        value = raw[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ConfigError(f"{where}: {key!r} must be {_typename(kind)}, not {value!r}")
        out[key] = value
    return out


def _positive(table: dict[str, Any], where: str, zero_ok: tuple[str, ...] = ()) -> None:
    for key, value in table.items():
        if key in zero_ok and value == 0:
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value <= 0:
            raise ConfigError(f"{where}: {key!r} must be greater than 0, not {value!r}")


@dataclass
class BusConfig:
    """One RS-485 line (or RTU-over-TCP server) and its meter model."""

    name: str
    url: str
    model: str
    baud: int | None = None
    parity: str | None = None
    stop_bits: int = 1
    driver: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class MeterConfig:
    """One meter: its id, its bus and address, external CT/PT ratios, its own settings."""

    id: str
    bus: str
    address: int | str
    ct: int = 1
    pt: int = 1
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Config:
    """A checked edge.toml."""

    path: Path
    site: str
    gateway: str
    timezone: str
    store: Path
    log_level: str
    broker: Broker
    key_file: Path
    report_s: int
    history_s: int
    heartbeat_s: float
    tick_s: float
    prune_s: int
    retention: dict[str, int]
    sync: SyncSettings
    defaults: dict[str, Any]
    tariffs: dict[str, list[dict[str, Any]]]
    buses: list[BusConfig]
    meters: list[MeterConfig]

    def fixed_offset_s(self) -> int | None:
        """The UTC offset in seconds if ``timezone`` is a fixed offset (``+08:00``), else None."""
        m = _OFFSET.match(self.timezone)
        if m is None:
            return None
        sign = -1 if m.group(2) == "-" else 1
        return sign * (int(m.group(3)) * 3600 + int(m.group(4)) * 60)

    def config_hash(self) -> str:
        """A short hash of what the cloud should know changed (buses, meters, settings)."""
        doc = {
            "buses": [b.__dict__ for b in self.buses],
            "meters": [m.__dict__ for m in self.meters],
            "defaults": self.defaults,
            "timezone": self.timezone,
        }
        text = json.dumps(doc, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _reads_own_ratios(model: str) -> bool:
    try:
        return drivers.driver_class(model).reads_own_ratios
    except ConfigError:
        return False  # an unknown model is reported where the bus is built, with the model list


def _resolve(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def load(path: str | Path) -> Config:
    """Read and check ``edge.toml``; ``ConfigError`` says what is wrong and where."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no config file at {path}; make one with `gridvend provision gateway`"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse(raw, path)


def parse(raw: dict[str, Any], path: Path) -> Config:
    """Check a parsed TOML document (``path`` anchors relative paths and error messages)."""
    base = path.parent
    top = _check_table(raw, _TOP, "the top level")
    for key in ("site", "gateway"):
        if not _NAME.match(top[key]):
            raise ConfigError(
                f"{key} {top[key]!r} must be 1-64 ASCII letters, digits, '.', '_' or '-' "
                "(it is part of MQTT topics and the envelope header)"
            )
    if top["log_level"].lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"log_level {top['log_level']!r} is not debug, info, warning or error")
    broker = _broker(top["broker"], base)
    keys = _check_table(top["keys"], _KEYS, "[keys]") if top["keys"] else None
    if keys is None:
        raise ConfigError("[keys] lacks the required key 'file' (the collector's key file)")
    intervals = _check_table(top["intervals"], _INTERVALS, "[intervals]")
    _positive(intervals, "[intervals]", zero_ok=("report_s",))  # 0: report every poll
    retention = _check_table(top["retention"], _RETENTION, "[retention]")
    _positive(retention, "[retention]")
    sync_t = _check_table(top["sync"], _SYNC, "[sync]")
    _positive(sync_t, "[sync]")
    sync = SyncSettings(heartbeat_s=float(intervals["heartbeat_s"]), **sync_t)
    tariffs = _tariffs(top["tariffs"])
    buses = _buses(top["buses"])
    meters = _meters(top["meters"], buses)
    return Config(
        path=path,
        site=top["site"],
        gateway=top["gateway"],
        timezone=top["timezone"],
        store=_resolve(base, top["store"]),
        log_level=top["log_level"].lower(),
        broker=broker,
        key_file=_resolve(base, keys["file"]),
        report_s=intervals["report_s"],
        history_s=intervals["history_s"],
        heartbeat_s=float(intervals["heartbeat_s"]),
        tick_s=float(intervals["tick_s"]),
        prune_s=intervals["prune_s"],
        retention=retention,
        sync=sync,
        defaults=top["defaults"],
        tariffs=tariffs,
        buses=buses,
        meters=meters,
    )


def _broker(raw: Any, base: Path) -> Broker:
    broker = Broker(**_check_table(raw, _BROKER, "[broker]"))
    try:
        broker.endpoint()
    except ValueError as exc:
        raise ConfigError(f"[broker] url: {exc}") from None
    if broker.ca_file is not None:
        broker.ca_file = str(_resolve(base, broker.ca_file))
    return broker


def _tariffs(raw: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    tariffs: dict[str, list[dict[str, Any]]] = {}
    for tariff_id, versions in raw.items():
        if not isinstance(versions, list) or not all(isinstance(v, dict) for v in versions):
            raise ConfigError(
                f"[tariffs] {tariff_id!r} must be a list of version tables ([[tariffs.{tariff_id}]])"
            )
        tariffs[tariff_id] = versions
    return tariffs


def _buses(raw: list[Any]) -> list[BusConfig]:
    buses: list[BusConfig] = []
    for i, b in enumerate(raw):
        bus = BusConfig(**_check_table(b, _BUS, f"[[buses]] #{i + 1}"))
        if any(other.name == bus.name for other in buses):
            raise ConfigError(f"[[buses]] #{i + 1}: bus name {bus.name!r} is used twice")
        buses.append(bus)
    if not buses:
        raise ConfigError("no [[buses]]: the collector needs at least one bus")
    return buses


def _meters(raw: list[Any], buses: list[BusConfig]) -> list[MeterConfig]:
    names = {b.name for b in buses}
    models_by_bus = {b.name: b.model for b in buses}
    meters: list[MeterConfig] = []
    seen: set[str] = set()
    places: set[tuple[str, str]] = set()
    for i, m in enumerate(raw):
        meter = MeterConfig(**_check_table(m, _METER, f"[[meters]] #{i + 1}"))
        where = f"[[meters]] #{i + 1} ({meter.id})"
        if meter.id in seen:
            raise ConfigError(f"{where}: meter id {meter.id!r} is used twice")
        if meter.bus not in names:
            raise ConfigError(
                f"{where}: bus {meter.bus!r} is not one of the [[buses]] {sorted(names)}"
            )
        if (meter.bus, str(meter.address)) in places:
            raise ConfigError(
                f"{where}: address {meter.address!r} is used twice on bus {meter.bus!r}"
            )
        if meter.ct < 1 or meter.pt < 1:
            raise ConfigError(f"{where}: ct and pt are ratios ≥ 1")
        model = models_by_bus[meter.bus]
        if (meter.ct, meter.pt) != (1, 1) and _reads_own_ratios(model):
            # One source of truth for the ratios: these meters hold them in registers and the
            # driver already returns primary-side values; scaling again would bill ct×pt twice.
            raise ConfigError(
                f"{where}: model {model} reads its PT/CT ratios from the meter itself and reports "
                "primary-side values; remove ct/pt here (set the ratios on the meter instead)"
            )
        seen.add(meter.id)
        places.add((meter.bus, str(meter.address)))
        meters.append(meter)
    return meters


# --- the key file -------------------------------------------------------------------------
#
#   # gridvend collector key: keep it secret (mode 0600)
#   current = 1
#   [keys]
#   1 = "64 hex digits"
#   (during a rotation both ids are listed, and `current` names the one that seals)


def load_keyring(path: str | Path) -> envelope.Keyring:
    """The collector's keyring from its key file; ``ConfigError`` names what is wrong."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"no key file at {path}; `gridvend provision gateway` writes one"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"key file {path} is not valid TOML: {exc}") from None
    for key in raw:
        if key not in ("current", "keys"):
            raise ConfigError(f"unknown key {key!r} in key file {path} (known: current, keys)")
    current = raw.get("current")
    table = raw.get("keys")
    if isinstance(current, bool) or not isinstance(current, int):
        raise ConfigError(f"key file {path}: 'current' must be the integer id of the sealing key")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f'key file {path}: [keys] must list key id = "hex" pairs')
    keys: dict[int, bytes] = {}
    for key_id, hex_text in table.items():
        try:
            number = int(key_id)
            secret = bytes.fromhex(str(hex_text))
        except ValueError:
            raise ConfigError(
                f"key file {path}: key {key_id!r} must be an id = 64 hex digits"
            ) from None
        if not 0 <= number <= 255 or len(secret) != envelope.KEY_BYTES:
            raise ConfigError(
                f"key file {path}: key {key_id!r} must have an id 0..255 and 64 hex digits (256 bits)"
            )
        keys[number] = secret
    if current not in keys:
        raise ConfigError(f"key file {path}: current key {current} is not in [keys] {sorted(keys)}")
    return envelope.Keyring(keys, current=current)


def key_file_text(keys: dict[int, bytes], current: int) -> str:
    """The text of a key file holding ``keys`` (used by provisioning)."""
    lines = [
        "# gridvend collector key: keep it secret (mode 0600)",
        f"current = {current}",
        "",
        "[keys]",
    ]
    lines += [f'{key_id} = "{key.hex()}"' for key_id, key in sorted(keys.items())]
    return "\n".join(lines) + "\n"
