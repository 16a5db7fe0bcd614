"""Make a collector's identity: a 256-bit key file, its ``edge.toml`` and the cloud-side record,
from a few arguments and (optionally) a meter list in CSV. Its broker user, password hash and
ACL lines go into a broker folder (``provisioning.broker``; ``--broker-dir``), never into a loose
file that nothing installs.

Everything is checked before anything is written, so a bad CSV row (reported by row number) or a
bad bus spec leaves the output folder untouched. Existing files are not overwritten unless asked:
a collector's key is its identity.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any

from edge.config import ConfigError, key_file_text, load_keyring, parse
from shared.codec import envelope


class ProvisionError(ValueError):
    """The inputs cannot make a collector; the message says which one and why."""


BUS_KEYS = ("name", "url", "model", "baud", "parity", "stop_bits")
METER_COLUMNS = ("id", "bus", "address", "ct", "pt")
# CSV columns that are meter settings (engine settings, integers or text)
SETTING_COLUMNS = (
    "tariff_id",
    "price_override_micro_yuan_per_kwh",
    "alarm1_micro_yuan",
    "alarm2_micro_yuan",
    "overload_power_w",
    "hoarding_cap_micro_yuan",
)


def parse_bus(spec: str) -> dict[str, Any]:
    """``name=bus1,url=tcp://10.0.0.5:4001,model=acrel-ddsy1352[,baud=9600,parity=N]``."""
    bus: dict[str, Any] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not value.strip():
            raise ProvisionError(f"--bus {spec!r}: {part!r} is not key=value")
        if key not in BUS_KEYS:
            raise ProvisionError(
                f"--bus {spec!r}: unknown key {key!r} (known: {', '.join(BUS_KEYS)})"
            )
        value = value.strip()
        bus[key] = int(value) if key in ("baud", "stop_bits") and value.isdigit() else value
    for key in ("name", "url", "model"):
        if key not in bus:
            raise ProvisionError(f"--bus {spec!r} lacks {key}=")
    return bus


def _int_cell(value: str, column: str, row: int) -> int:
    try:
        return int(value.replace("_", ""))
    except ValueError:
        raise ProvisionError(
            f"meters CSV row {row}: {column} {value!r} is not an integer"
        ) from None


def parse_meters_csv(text: str, buses: list[str]) -> list[dict[str, Any]]:
    """Meters from CSV with a header: id, bus, address, [ct, pt, setting columns...].

    Errors name the row (the header is row 1) and the column.
    """
    reader = csv.DictReader(io.StringIO(text))
    _check_header([h.strip() for h in (reader.fieldnames or [])])
    meters: list[dict[str, Any]] = []
    for number, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if any(row.values()):
            meters.append(_meter_row(row, number, buses))
    return meters


def _check_header(header: list[str]) -> None:
    if not header:
        raise ProvisionError("meters CSV is empty: it needs a header row (id,bus,address,...)")
    for required in ("id", "bus", "address"):
        if required not in header:
            raise ProvisionError(f"meters CSV lacks the column {required!r}")
    for column in header:
        if column not in METER_COLUMNS and column not in SETTING_COLUMNS:
            known = ", ".join(METER_COLUMNS + SETTING_COLUMNS)
            raise ProvisionError(f"meters CSV column {column!r} is unknown (known: {known})")


def _meter_row(row: dict[str, str], number: int, buses: list[str]) -> dict[str, Any]:
    """One CSV row (``number`` counts the header as 1) as an edge.toml ``[[meters]]`` table."""
    meter: dict[str, Any] = {"id": row["id"], "bus": row["bus"]}
    if not meter["id"]:
        raise ProvisionError(f"meters CSV row {number}: id is empty")
    if meter["bus"] not in buses:
        raise ProvisionError(f"meters CSV row {number}: bus {meter['bus']!r} is not one of {buses}")
    address = row["address"]
    meter["address"] = int(address) if address.isdigit() and len(address) < 4 else address
    for column in ("ct", "pt"):
        if row.get(column):
            meter[column] = _int_cell(row[column], column, number)
    settings: dict[str, Any] = {}
    for column in SETTING_COLUMNS:
        value = row.get(column, "")
        if value:
            settings[column] = value if column == "tariff_id" else _int_cell(value, column, number)
    if settings:
        meter["settings"] = settings
    return meter


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ProvisionError(f"cannot write {value!r} to TOML")


def edge_toml(
    site: str,
    gateway: str,
    broker: str,
    password: str,
    key_file: str,
    buses: list[dict[str, Any]],
    meters: list[dict[str, Any]],
    timezone: str,
    ca_file: str | None = None,
) -> str:
    """The text of a collector's edge.toml (``ca_file``: the broker's CA, for mqtts://)."""
    lines = [
        f"# gridvend collector {gateway} at site {site} (made by `gridvend provision gateway`)",
        f"site = {_toml_value(site)}",
        f"gateway = {_toml_value(gateway)}",
        f"timezone = {_toml_value(timezone)}",
        f"store = {_toml_value(gateway + '.sqlite')}",
        "",
        "[broker]",
        f"url = {_toml_value(broker)}",
        f"username = {_toml_value(gateway)}",
        f"password = {_toml_value(password)}",
        *([f"ca_file = {_toml_value(ca_file)}"] if ca_file else []),
        "",
        "[keys]",
        f"file = {_toml_value(key_file)}",
        "",
        "[intervals]",
        "report_s = 30",
        "history_s = 1800",
        "heartbeat_s = 30",
        "",
        "[retention]",
        "history_days = 90",
    ]
    for bus in buses:
        lines += ["", "[[buses]]"] + [f"{k} = {_toml_value(v)}" for k, v in bus.items()]
    for meter in meters:
        lines += ["", "[[meters]]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in meter.items() if k != "settings"]
        if meter.get("settings"):
            lines.append(f"settings = {_toml_value(meter['settings'])}")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def provision_gateway(
    site: str,
    gateway: str,
    out: Path,
    *,
    buses: list[dict[str, Any]],
    meters: list[dict[str, Any]],
    broker: str = "mqtt://127.0.0.1:1883",
    timezone: str = "Asia/Shanghai",
    key_id: int = 1,
    force: bool = False,
    ca_file: Path | None = None,
) -> dict[str, Path]:
    """Write ``<gateway>.key``, ``edge.toml`` and ``<gateway>.cloud.json``
    into ``out``; returns their paths. Checks everything first (as the agent will)."""
    if not 0 <= key_id <= 255:
        raise ProvisionError(f"--key-id {key_id} must be 0..255")
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "key": out / f"{gateway}.key",
        "config": out / "edge.toml",
        "record": out / f"{gateway}.cloud.json",
    }
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not force:
        raise ProvisionError(
            f"{', '.join(existing)} already exist; a collector's key is its identity: "
            "use another --out, or --force to replace them"
        )
    key = secrets.token_bytes(envelope.KEY_BYTES)
    password = secrets.token_urlsafe(24)
    ca_name = "ca.crt" if ca_file is not None else None
    text = edge_toml(
        site, gateway, broker, password, paths["key"].name, buses, meters, timezone, ca_name
    )
    try:  # the agent's own checks, before anything is written
        parse(tomllib.loads(text), paths["config"])
    except ConfigError as exc:
        raise ProvisionError(f"the collector config would not load: {exc}") from None
    record = {
        "id": gateway,
        "site": site,
        # The cloud creates the site from this record when it does not know it yet.
        "timezone": timezone,
        "key_id": key_id,
        "key_hex": key.hex(),
        "mqtt_username": gateway,
        "mqtt_password": password,
        "buses": [{"name": b["name"], "model": b["model"]} for b in buses],
        "meters": [{"id": m["id"], "bus": m["bus"], "address": m["address"]} for m in meters],
    }
    _write(paths["key"], key_file_text({key_id: key}, key_id), 0o600)
    _write(paths["record"], json.dumps(record, indent=2) + "\n", 0o600)
    _write(paths["config"], text, 0o600)
    if ca_file is not None:  # the broker's CA: the collector checks the broker's certificate
        paths["ca"] = out / "ca.crt"
        _write(paths["ca"], Path(ca_file).read_text(encoding="ascii"), 0o644)
    return paths


def rotate_key(key_file: Path) -> dict[str, Any]:
    """Add a new key to a key file (it becomes current; the previous one stays for the
    changeover). Returns ``{"key_id", "key_hex", "previous_key_id"}`` for the cloud."""
    ring = load_keyring(key_file)
    keys = {kid: ring.key(kid) for kid in ring.ids}
    new_id = (ring.current + 1) % 256
    new_key = secrets.token_bytes(envelope.KEY_BYTES)
    kept = {ring.current: keys[ring.current], new_id: new_key}
    _write(key_file, key_file_text(kept, new_id), 0o600)
    return {"key_id": new_id, "key_hex": new_key.hex(), "previous_key_id": ring.current}
