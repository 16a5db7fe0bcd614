"""The notifier's settings: one TOML file (``gridvend cloud notify --config notify.toml``).
Every table and key is checked; an unknown one is an error naming it (style.md 8).

::

    poll_s = 1                  # how often the outbox and the sources are looked at
    scan_s = 2                  # events → messages
    runway_check_s = 3600       # the credit-runway reminder (B07)
    health_s = 10               # channel health written for the office

    [routing]
    route = ["modem", "aliyun"] # primary first, then fallbacks in order
    fallback_after = 3          # failed attempts on one channel before the next is tried
    max_attempts = 10
    backoff_min_s = 10
    backoff_max_s = 600

    [limits]
    per_number_per_hour = 10
    per_number_per_day = 50

    [quiet_hours]               # non-urgent kinds only (the runway reminder), site local time
    start = "22:00"
    end = "08:00"               # start = end: no quiet hours

    [events]
    sign = ""                   # 【signature】 at the start of a text; "" = the site's name
    lookback_s = 600
    coalesce_s = 300           # an arrears text covers its trip; a top-up text the restore
    min_off_s = 60             # "power restored" only after an outage this long
    max_age_s = 86400
    runway_days = 3

    [channels.modem]            # one table per channel; kind = modem | aliyun | tencent |
    kind = "modem"              # webhook, and that channel's own settings (see its module)
    port = "/dev/ttyUSB2"
    concurrency = 1             # messages in flight on this channel (the modem: always 1)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.notify.channels import KINDS
from cloud.notify.channels.base import options
from cloud.notify.errors import ConfigError
from cloud.notify.outbox import Policy
from cloud.notify.sources import Scan

Spec = dict[str, tuple[type | tuple[type, ...], Any]]

_TOP: Spec = {
    "poll_s": ((int, float), 1),
    "scan_s": ((int, float), 2),
    "runway_check_s": ((int, float), 3600),
    "health_s": ((int, float), 10),
    "routing": (dict, {}),
    "limits": (dict, {}),
    "quiet_hours": (dict, {}),
    "events": (dict, {}),
    "channels": (dict, {}),
}
_ROUTING: Spec = {
    "route": (list, []),
    "fallback_after": (int, 3),
    "max_attempts": (int, 10),
    "backoff_min_s": (int, 10),
    "backoff_max_s": (int, 600),
}
_LIMITS: Spec = {"per_number_per_hour": (int, 10), "per_number_per_day": (int, 50)}
_QUIET: Spec = {"start": (str, "22:00"), "end": (str, "08:00")}
_EVENTS: Spec = {
    "sign": (str, ""),
    "lookback_s": (int, 600),
    "coalesce_s": (int, 300),
    "min_off_s": (int, 60),
    "max_age_s": (int, 86400),
    "runway_days": (int, 3),
}
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    kind: str
    settings: dict[str, Any]
    concurrency: int = 1


@dataclass(frozen=True)
class Settings:
    policy: Policy
    scan: Scan
    channels: tuple[ChannelSpec, ...] = ()
    poll_s: float = 1
    scan_s: float = 2
    runway_check_s: float = 3600
    health_s: float = 10
    source: str = field(default="", compare=False)


def _minutes(value: str, key: str) -> int:
    m = _HHMM.match(value)
    if not m:
        raise ConfigError(f"{key} must be HH:MM (24 h), not {value!r}", key)
    return int(m.group(1)) * 60 + int(m.group(2))


def _channels(raw: dict[str, Any]) -> tuple[ChannelSpec, ...]:
    out = []
    for name, table in raw.items():
        where = f"channels.{name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{where} must be a table", where)
        body = dict(table)
        kind = body.pop("kind", None)
        if kind not in KINDS:
            raise ConfigError(
                f"{where}.kind must be one of {', '.join(KINDS)}, not {kind!r}", f"{where}.kind"
            )
        concurrency = body.pop("concurrency", 1)
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ConfigError(
                f"{where}.concurrency must be a whole number ≥ 1", f"{where}.concurrency"
            )
        if kind == "modem" and concurrency != 1:
            raise ConfigError(
                f"{where}.concurrency: a modem sends one message at a time", f"{where}.concurrency"
            )
        options(KINDS[kind].OPTIONS, body, where)  # unknown keys, types, required ones
        out.append(ChannelSpec(name, kind, body, concurrency))
    return tuple(out)


def from_dict(raw: dict[str, Any], source: str = "") -> Settings:
    top = options(_TOP, raw, "notify")
    routing = options(_ROUTING, top["routing"], "routing")
    limits = options(_LIMITS, top["limits"], "limits")
    quiet = options(_QUIET, top["quiet_hours"], "quiet_hours")
    events = options(_EVENTS, top["events"], "events")
    channels = _channels(top["channels"])
    names = [c.name for c in channels]
    route = [str(r) for r in routing["route"]] or names
    for r in route:
        if r not in names:
            raise ConfigError(f"routing.route names {r!r}, which is not a channel", "routing.route")
    if not route:
        raise ConfigError("no channel is configured: add a [channels.<name>] table", "channels")
    start, end = (
        _minutes(quiet["start"], "quiet_hours.start"),
        _minutes(quiet["end"], "quiet_hours.end"),
    )
    policy = Policy(
        route=tuple(route),
        fallback_after=routing["fallback_after"],
        max_attempts=routing["max_attempts"],
        backoff_min_s=routing["backoff_min_s"],
        backoff_max_s=routing["backoff_max_s"],
        per_number_per_hour=limits["per_number_per_hour"],
        per_number_per_day=limits["per_number_per_day"],
        quiet_start_min=None if start == end else start,
        quiet_end_min=None if start == end else end,
    )
    scan = Scan(**events)
    return Settings(
        policy, scan, channels, top["poll_s"], top["scan_s"], top["runway_check_s"],
        top["health_s"], source,
    )  # fmt: skip


def load(path: str | Path) -> Settings:
    file = Path(path)
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no settings file at {file}", "config") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: {exc}", "config") from None
    return from_dict(raw, str(file))
