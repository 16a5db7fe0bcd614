"""Every difference between CPython and MicroPython that the engine cares about, in one place.

The engine keeps to the MicroPython subset (protocols.md §9). What bites, measured on the pinned
MicroPython 1.28 (WebAssembly build):

- ``typing`` is absent and ``from __future__ import annotations`` fails, but MicroPython never
  evaluates annotations, so plain annotations are fine there. CPython 3.11 evaluates function
  annotations at definition time, so names used in them (``Any``) must exist on CPython:
  ``Any`` comes from here.
- ``isinstance(True, int)`` is False on MicroPython and True on CPython: ``is_int`` uses
  ``type(x) is int``, which rejects bools on both.
- dicts are not insertion-ordered on MicroPython: nothing in the engine depends on dict order
  (lists are used wherever order matters).
- no ``bisect`` module: ``bisect_right`` is here.
- no ``str.zfill``, no ``{**a}`` in literals, no exception chaining, no multiple inheritance
  between built-in exception types: the engine uses ``%`` formatting, ``dict(a)``, plain
  ``raise`` and single-inheritance errors.
"""

try:
    from typing import Any
except ImportError:  # MicroPython: annotations are never evaluated, so Any is only a name
    Any = object  # type: ignore[misc,assignment]


def is_int(value: object) -> bool:
    """True for a plain int (not a bool) on both runtimes."""
    return type(value) is int


def bisect_right(items: list[int], value: int) -> int:
    """Index after the last element of sorted ``items`` that is <= ``value``."""
    lo = 0
    hi = len(items)
    while lo < hi:
        mid = (lo + hi) // 2
        if value < items[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo
