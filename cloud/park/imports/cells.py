"""One cell of an import sheet as a value: whole numbers, yuan (exact, at most 6 places), yes/no,
one-line text, identifiers. A spreadsheet gives numbers as floats and text with spaces around
it; both are taken as a person typed them. A bad cell is a ``CellError`` naming its column."""

from __future__ import annotations

import decimal
from typing import Any

from cloud.errors import ServiceError
from cloud.values import check_id, check_line


class CellError(ValueError):
    """A refused cell: its column and what is wrong (the row is the caller's)."""

    def __init__(self, column: str | None, message: str) -> None:
        super().__init__(message)
        self.column = column
        self.message = message


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def text(value: Any) -> str | None:
    """The cell as text (``None`` when blank); a whole number typed as one loses its ``.0``."""
    if blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def integer(value: Any, column: str, low: int, high: int) -> int | None:
    """A whole number within ``low..high`` (``None`` when blank)."""
    if blank(value):
        return None
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip()) if len(value.strip()) <= 20 else None
    if number is None:
        raise CellError(column, f"must be a whole number, got {value!r:.40}")
    if not low <= number <= high:
        raise CellError(column, f"must be between {low} and {high}, got {number}")
    return number


def yuan(value: Any, column: str, high_micro_yuan: int) -> int | None:
    """Yuan as text or a spreadsheet number → exact micro-yuan, 0 … ``high_micro_yuan``."""
    if blank(value):
        return None
    if isinstance(value, bool):
        raise CellError(column, f"must be an amount in yuan like 12.50, got {value!r}")
    # A float from a spreadsheet: its shortest repr is the number the user typed.
    raw = repr(value) if isinstance(value, float) else str(value).strip()
    try:
        amount = decimal.Decimal(raw.replace(",", ""))
    except decimal.InvalidOperation:
        raise CellError(
            column, f"must be an amount in yuan like 12.50, got {value!r:.40}"
        ) from None
    if not amount.is_finite() or abs(amount.adjusted()) > 30:
        raise CellError(column, f"must be an amount in yuan like 12.50, got {value!r:.40}")
    micro = amount * 1_000_000
    if micro != micro.to_integral_value():
        raise CellError(column, f"{value!r} has more than 6 decimal places")
    if micro < 0:
        raise CellError(column, f"must not be negative, got {value!r}")
    if micro > high_micro_yuan:
        raise CellError(
            column, f"must be at most {high_micro_yuan // 1_000_000:,} yuan, got {value}"
        )
    return int(micro)


def boolean(value: Any, column: str) -> bool | None:
    if blank(value):
        return None
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("yes", "y", "true", "1", "是"):
        return True
    if word in ("no", "n", "false", "0", "否"):
        return False
    raise CellError(column, f"must be yes or no, got {value!r:.40}")


def line(value: Any, column: str, max_len: int, *, required: bool = False) -> str | None:
    """One line of text without control characters (``cloud.values.check_line``)."""
    raw = text(value)
    if raw is None:
        if required:
            raise CellError(column, "is required")
        return None
    try:
        return check_line(raw, column, max_len)
    except ServiceError as exc:
        raise CellError(column, exc.message.removeprefix(f"{column} ")) from None


def ident(value: Any, column: str, *, required: bool = True) -> str | None:
    """An identifier (``cloud.values.check_id``)."""
    raw = text(value)
    if raw is None:
        if required:
            raise CellError(column, "is required")
        return None
    try:
        return check_id(raw, column)
    except ServiceError as exc:
        raise CellError(column, exc.message.removeprefix(f"{column} ")) from None
