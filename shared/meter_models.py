"""The meter models both sides know, as data: each model's driver (aliases share one) and its
protocol, and what an address is on that protocol. The collector's driver registry
(``edge/drivers/__init__.py``) and this table name the same models (a test holds them together);
the cloud uses this one to refuse, at import, a meter its collector could never poll.

Addresses, canonical form:

- Modbus RTU (Acrel): a slave id 1 … 247, written in decimal (``"5"``; ``"05"`` becomes ``"5"``);
  0 is broadcast and 248 … 255 are reserved (Modbus over serial line, §2.2).
- DL/T 645-2007: the 12 decimal digits of the meter's nameplate (``"000000012345"``); a shorter
  number is refused rather than padded, since it is most often a spreadsheet that dropped the
  leading zeros of a number, or a typo.
"""

from __future__ import annotations

MODBUS, DLT645 = "modbus", "dlt645"

# model -> (driver, protocol)
MODELS: dict[str, tuple[str, str]] = {
    "acrel-ddsy1352": ("acrel-ddsy1352", MODBUS),
    "acrel-dtsy1352": ("acrel-ddsy1352", MODBUS),
    "acrel-adl400": ("acrel-adl400", MODBUS),
    "acrel-dtsd1352": ("acrel-adl400", MODBUS),
    "dlt645": ("dlt645", DLT645),
}


class AddressError(ValueError):
    """An address the model's protocol cannot have (the message says what it can)."""


def driver_of(model: str) -> str:
    """The driver a model uses (aliases share one); ``KeyError`` for an unknown model."""
    return MODELS[model][0]


def canonical_address(model: str, text: str) -> str:
    """The canonical address of a meter of ``model`` written ``text``; ``AddressError`` if its
    protocol cannot have it, ``KeyError`` for an unknown model."""
    protocol = MODELS[model][1]
    raw = text.strip()
    if protocol == MODBUS:
        if not raw.isdigit() or not raw.isascii() or not 1 <= int(raw) <= 247:
            raise AddressError(f"a Modbus address is a slave id 1 … 247, got {text!r}")
        return str(int(raw))
    if len(raw) != 12 or not raw.isdigit() or not raw.isascii():
        raise AddressError(
            f"a DL/T 645 address is the 12 digits on the meter's nameplate (e.g. 000000012345), "
            f"got {text!r}; format the column as text so leading zeros stay"
        )
    return raw
