"""Money at the providers' edge. Alipay sends yuan as decimal text ("12.30"), WeChat Pay sends
integer fen; inside gridvend every amount is integer micro-yuan (1 fen = 10 000 micro-yuan).

No float is ever involved: yuan text is parsed with a regular expression into integer fen, so
"12.30" is exactly 1230 fen and "0.1" + "0.2" problems cannot arise.
"""

from __future__ import annotations

import re
from typing import Any

from cloud.errors import InvalidError

MICRO_YUAN_PER_FEN = 10_000

# Plain decimal yuan, at most two places: "0.01", "12", "12.3", "12.30". No sign, no exponent,
# no spaces, no leading zeros ("012"), no bare point ("12." or ".5").
_YUAN = re.compile(r"(0|[1-9][0-9]{0,11})(?:\.([0-9]{1,2}))?")


def fen_from_yuan_text(text: Any, field: str = "total_amount") -> int:
    """Integer fen from a provider's yuan text; ``InvalidError`` naming ``field`` otherwise."""
    if not isinstance(text, str):
        raise InvalidError(f"{field} must be yuan as text like 12.30, got {text!r}", field)
    match = _YUAN.fullmatch(text)
    if match is None:
        raise InvalidError(
            f"{field} must be yuan with at most two decimals (like 12.30), got {text!r}", field
        )
    whole, frac = match.group(1), match.group(2) or ""
    return int(whole) * 100 + int(frac.ljust(2, "0"))


def yuan_text(fen: int) -> str:
    """ "12.30" for 1230 fen: how Alipay wants ``total_amount`` and how the bills print it."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise InvalidError(f"an amount in fen must be an integer, got {fen!r}", "amount_fen")
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def fen_from_int(value: Any, field: str = "amount.total") -> int:
    """WeChat's integer fen, checked: an int (not a bool, not a float), not negative."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidError(f"{field} must be an integer number of fen, got {value!r}", field)
    if value < 0:
        raise InvalidError(f"{field} must not be negative, got {value}", field)
    return value


def micro_yuan_from_fen(fen: int) -> int:
    return fen * MICRO_YUAN_PER_FEN


def fen_from_micro_yuan(micro_yuan: int, field: str = "amount_micro_yuan") -> int:
    """Providers move whole fen: an amount with a fraction of a fen cannot be paid."""
    if not isinstance(micro_yuan, int) or isinstance(micro_yuan, bool):
        raise InvalidError(f"{field} must be an integer, got {micro_yuan!r}", field)
    fen, rest = divmod(micro_yuan, MICRO_YUAN_PER_FEN)
    if rest:
        raise InvalidError(
            f"{field} {micro_yuan} is not a whole number of fen (multiples of 10000)", field
        )
    return fen
