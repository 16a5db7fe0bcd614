"""What every meter driver provides, and helpers they share.

A driver is stateless about the line: the bus hands it the line's client on every call. It
turns one meter's answers into one *reading* (docs/architecture.md, "A reading") and the bus's
relay operations into that model's commands. Options are validated at construction: an unknown
key is a ConfigError that names it.
"""

from __future__ import annotations

import calendar
import time
from typing import Any, ClassVar

from edge.errors import ConfigError, UnsupportedError
from shared.codec import readings

OPS = ("trip", "close", "keep_power", "release")
BANDS = ("sharp", "peak", "flat", "valley")
# A reading's fields (shared/codec/readings.py): what read() returns, every key present.
READING_KEYS = readings.MEASUREMENT
empty_reading = readings.empty


def local_to_epoch(fields: tuple[int, int, int, int, int, int], utc_offset_s: int) -> int | None:
    """(Y, M, D, h, m, s) meter local time to epoch seconds; None if it is not a valid time."""
    year, month, day, hour, minute, second = fields
    try:
        if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
            return None
        if not (0 <= hour < 24 and 0 <= minute < 60 and 0 <= second < 60):
            return None
    except (ValueError, calendar.IllegalMonthError):
        return None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - utc_offset_s


def epoch_to_local(ts: int, utc_offset_s: int) -> tuple[int, int, int, int, int, int, int]:
    """Epoch seconds to meter local (Y, M, D, h, m, s, weekday with Sunday = 0)."""
    t = time.gmtime(ts + utc_offset_s)
    return t.tm_year, t.tm_mon, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, (t.tm_wday + 1) % 7


class Driver:
    """Base class. Subclasses set the class attributes and implement read/command."""

    model: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()
    protocol: ClassVar[str] = "modbus"  # "modbus" or "dlt645": picks the client
    default_baud: ClassVar[int] = 9600
    default_parity: ClassVar[str] = "N"
    ops: ClassVar[tuple[str, ...]] = ()  # relay operations the model supports
    option_defaults: ClassVar[dict[str, Any]] = {}
    # True when the model reports its own PT/CT ratio registers and the driver already returns
    # primary-side values: the collector's config must then not scale the reading a second time.
    reads_own_ratios: ClassVar[bool] = False

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.option_defaults))
        if unknown:
            known = ", ".join(sorted(self.option_defaults)) or "none"
            raise ConfigError(
                f"unknown option {unknown[0]!r} for model {self.model} (known: {known})"
            )
        self.options = {**self.option_defaults, **options}

    def parse_address(self, address: Any) -> Any:
        """The canonical form of a meter address for this protocol; ConfigError if invalid."""
        try:
            value = int(address)
        except (TypeError, ValueError):
            raise ConfigError(
                f"Modbus address must be an integer 1..247 (got {address!r})"
            ) from None
        if not 1 <= value <= 247:
            raise ConfigError(f"Modbus address must be 1..247 (got {address!r})")
        return value

    def poll_exchanges(self) -> list[tuple[int, int]]:
        """(request bytes, reply bytes) of each frame exchange one poll makes (for timing)."""
        return []

    async def setup(self, client: Any, address: Any, *, retries: int = 0) -> None:
        """Prepare a meter the first time the bus reaches it (and after contact returns)."""

    async def read(
        self, client: Any, address: Any, *, now: int, retries: int = 0
    ) -> dict[str, Any]:
        """One reading."""
        raise NotImplementedError

    async def command(
        self, client: Any, address: Any, op: str, *, now: int, retries: int = 0
    ) -> None:
        """Perform relay operation ``op`` (one of OPS)."""
        raise UnsupportedError(f"model {self.model} has no relay control ({op} refused)")

    async def sync_clock(self, client: Any, now: int) -> None:
        """Set the meters' clocks on the line (broadcast)."""
        raise UnsupportedError(f"model {self.model} has no clock gridvend can set")

    def check_op(self, op: str) -> None:
        if op not in OPS:
            raise ConfigError(f"unknown relay operation {op!r} (one of {', '.join(OPS)})")
        if op not in self.ops:
            raise UnsupportedError(f"model {self.model} cannot {op}: it has no relay control")
