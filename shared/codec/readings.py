"""A reading, defined once: what a meter reports, what the uplink ``reading`` message carries of
it, and the money the collector rated with it (docs/architecture.md, "A reading";
docs/protocol.md, "reading").

- :class:`Measurement` is what a driver returns for one poll (driver → bus → agent): every field
  present, ``None`` where the meter does not know it. Integers with the unit in the name.
- :data:`REPORTED` are the measurements the uplink carries; :data:`MONEY` the collector's
  figures beside them: the charge since the meter's previous reading and the running totals.
- :class:`ReadingMessage` is the uplink message (``t``, ``id``, ``meter``, :data:`REPORTED`,
  :data:`MONEY`); ``shared.codec.messages`` validates it with checkers keyed by these names.

The cloud stores :func:`stored` of a message as a ``readings`` row (cloud/models/telemetry.py;
a test holds its columns to these names). Sans-I/O, no dependencies.
"""

from __future__ import annotations

from typing import Any, TypedDict


class Measurement(TypedDict):
    """One poll of one meter, primary side (CT/PT applied)."""

    ts: int  # epoch seconds of the poll
    energy_wh: int  # the total active energy counter
    band_energy_wh: dict[str, int] | None  # per time-of-use band, where the meter keeps them
    power_w: int | None
    voltages_dv: list[int] | None  # per phase, 0.1 V
    currents_ma: list[int] | None  # per phase
    frequency_chz: int | None  # 0.01 Hz
    relay: str | None  # "open" | "closed"
    clock: int | None  # the meter's own clock, epoch seconds


class ReadingMessage(TypedDict):
    """The uplink ``reading`` message."""

    t: str  # "reading"
    id: int  # the outbox id: per collector, increasing
    meter: str
    ts: int
    energy_wh: int
    power_w: int | None
    relay: str | None
    band_energy_wh: dict[str, int] | None
    voltages_dv: list[int] | None
    currents_ma: list[int] | None
    charge_micro_yuan: int  # charged since the meter's previous reading
    balance_micro_yuan: int
    credits_micro_yuan: int
    refunds_micro_yuan: int
    charges_micro_yuan: int


MEASUREMENT: tuple[str, ...] = tuple(Measurement.__annotations__)
REPORTED: tuple[str, ...] = (
    "ts",
    "energy_wh",
    "power_w",
    "relay",
    "band_energy_wh",
    "voltages_dv",
    "currents_ma",
)
MONEY: tuple[str, ...] = (
    "charge_micro_yuan",
    "balance_micro_yuan",
    "credits_micro_yuan",
    "refunds_micro_yuan",
    "charges_micro_yuan",
)
MESSAGE: tuple[str, ...] = tuple(ReadingMessage.__annotations__)


def empty(ts: int) -> dict[str, Any]:
    """Every field of a :class:`Measurement`, ``None`` but its time: a driver fills in what it
    reads (the energy counter always)."""
    measurement: dict[str, Any] = dict.fromkeys(MEASUREMENT)
    measurement["ts"] = ts
    return measurement


def reported(measurement: Measurement | dict[str, Any]) -> dict[str, Any]:
    """The measurements of a poll the uplink carries (absent ones as ``None``)."""
    return {name: measurement.get(name) for name in REPORTED}


# What the cloud keeps of a ``reading`` message, besides its ids (cloud/uplink/rows.py).
STORED: tuple[str, ...] = REPORTED + MONEY


def stored(msg: ReadingMessage | dict[str, Any]) -> dict[str, Any]:
    """The measurements and money of a ``reading`` message, as the cloud keeps them."""
    return {name: msg.get(name) for name in STORED}
