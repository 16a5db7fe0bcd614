"""What a value coming from outside may be: bounded integers, identifiers, text without control
characters, phone numbers, choices. One definition for every way in — the REST API (whose
OpenAPI document is built from the same constants, ``cloud.web.api.schemas``), the office's
forms, the importer and the command line — so that nothing the database cannot hold, and nothing
a collector would refuse, is ever stored.

Every check returns the value (normalised where it says so) or raises ``InvalidError`` naming
the field, with a message that says what would be accepted.

Why each rule:

- integers: every column is a signed 64-bit integer on PostgreSQL; a bigger one failed the whole
  request with a 500 (and on SQLite silently became a float). Domains narrow it further.
- text: a NUL cannot be stored in PostgreSQL text; other control characters break CSV and Excel
  exports, receipts and SMS. One-line fields also refuse leading and trailing spaces (forms
  strip them before sending). A lone UTF-16 surrogate (which JSON can spell) cannot be encoded
  at all: ``check_line`` refuses it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from cloud.errors import InvalidError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# The most one movement of money may be, whatever a site allows: one million yuan.
MAX_AMOUNT_MICRO_YUAN = 1_000_000 * 1_000_000
# Money settings (thresholds, caps, floors) stay within ± ten million yuan: far beyond any real
# meter, far below where sums of them could leave 64 bits.
MAX_SETTING_MICRO_YUAN = 10_000_000 * 1_000_000

# Characters refused in text (Unicode Cc: C0, DEL, C1). Notes may keep tabs and line breaks.
# (Lone surrogates are not text at all: the API refuses a body holding one as malformed JSON.)
_CONTROL = "\\x00-\\x1f\\x7f-\\x9f"
_NOTE_CONTROL = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f"
# One line, no leading or trailing white space (at least one character).
LINE_PATTERN = f"^[^\\s{_CONTROL}](?:[^{_CONTROL}]*[^\\s{_CONTROL}])?$"
# A note: any length from 0, tabs and line breaks allowed.
NOTE_PATTERN = f"^[^{_NOTE_CONTROL}]*$"
# Identifiers used in topics and URLs: letters, digits, "-", "_", "." (not first).
ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._-]*$"
ID_MAX = 64
# A phone number as people write it: digits, optionally a leading "+", spaces or dashes inside.
PHONE_PATTERN = "^\\+?[0-9](?:[0-9 -]*[0-9])?$"
PHONE_MAX = 32

_LINE = re.compile(LINE_PATTERN)
_NOTE = re.compile(NOTE_PATTERN)
_ID = re.compile(ID_PATTERN)
_PHONE = re.compile(PHONE_PATTERN)

# Text lengths per kind of field (the database columns are at least this wide).
NAME_MAX = 200
NOTE_MAX = 1000
SHORT_NOTE_MAX = 500
EMAIL_MAX = 200
ID_NUMBER_MAX = 64


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_int(value: Any) -> bool:
    """A JSON integer: an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(
    value: Any, field: str, low: int | None = INT64_MIN, high: int | None = INT64_MAX
) -> int:
    """An integer within ``low..high`` (signed 64-bit when not narrowed)."""
    if not is_int(value):
        raise InvalidError(f"{field} must be an integer, got {value!r}", field)
    lo = INT64_MIN if low is None else low
    hi = INT64_MAX if high is None else high
    if not lo <= value <= hi:
        raise InvalidError(f"{field} must be between {lo} and {hi}, got {value}", field)
    return int(value)


def check_line(
    value: Any, field: str, max_len: int = NAME_MAX, *, required: bool = True
) -> str | None:
    """One line of text, 1–``max_len`` characters, no control characters, no leading or
    trailing space. Not required: ``None`` or ``""`` give ``None``."""
    if value is None or (value == "" and not required):
        if required:
            raise InvalidError(f"{field} is required", field)
        return None
    if not isinstance(value, str):
        raise InvalidError(f"{field} must be text, got {type(value).__name__}", field)
    if len(value) > max_len:
        raise InvalidError(
            f"{field} is {len(value)} characters long; at most {max_len} are allowed", field
        )
    if not _LINE.match(value) or not _encodable(value):
        raise InvalidError(
            f"{field} must be one line of text with no control characters and no leading or "
            f"trailing spaces, got {value[:40]!r}",
            field,
        )
    return value


def check_note(value: Any, field: str, max_len: int = NOTE_MAX) -> str:
    """Free text, 0–``max_len`` characters; tabs and line breaks allowed, other control
    characters not. ``None`` gives ``""``."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidError(f"{field} must be text, got {type(value).__name__}", field)
    if len(value) > max_len:
        raise InvalidError(
            f"{field} is {len(value)} characters long; at most {max_len} are allowed", field
        )
    if not _NOTE.match(value) or not _encodable(value):
        raise InvalidError(f"{field} must not contain control characters", field)
    return value


def check_id(value: Any, field: str) -> str:
    """An identifier used in topics and URLs: 1–64 letters, digits, ``-_.``, not starting with
    a punctuation mark."""
    if not isinstance(value, str) or len(value) > ID_MAX or not _ID.match(value):
        raise InvalidError(
            f"{field} must be 1–{ID_MAX} letters, digits, '-', '_' or '.' starting with a "
            f"letter or digit; got {value!r}",
            field,
        )
    return value


def check_phone(value: Any, field: str, *, required: bool = False) -> str | None:
    """A phone number: digits, an optional leading ``+``, spaces or dashes inside; ≤ 32."""
    if value is None or (value == "" and not required):
        if required:
            raise InvalidError(f"{field} is required", field)
        return None
    if not isinstance(value, str) or len(value) > PHONE_MAX or not _PHONE.match(value):
        raise InvalidError(
            f"{field} must be a phone number (digits, an optional leading +, spaces or dashes "
            f"inside, at most {PHONE_MAX} characters); got {value!r}",
            field,
        )
    return value


def check_choice(value: Any, field: str, choices: Iterable[str]) -> str:
    """One of ``choices``."""
    options = tuple(choices)
    if not isinstance(value, str) or value not in options:
        raise InvalidError(f"{field} must be one of {', '.join(options)}; got {value!r}", field)
    return value


def check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidError(f"{field} must be true or false, got {value!r}", field)
    return value
