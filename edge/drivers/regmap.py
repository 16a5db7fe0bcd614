"""Modbus register maps as data, shared by the drivers (which read them) and the simulator
(which serves them), so the two cannot drift apart.

A :class:`RegisterMap` lists the blocks a poll reads (one request each) and the fields inside
them. A :class:`Field` says where a value sits, its type, and how the raw integer becomes a
gridvend unit: ``value = raw × factor × ratio`` where ``ratio`` is the meter's PT, CT or PT×CT
ratio for values the meter reports on the secondary side (readings are primary-side). 32-bit
values are big-endian, high word first (protocols.md §1, §2).
"""

from __future__ import annotations

from typing import NamedTuple

KINDS = {"u16": 1, "s16": 1, "u32": 2, "s32": 2, "bytes": 1}
RATIOS = ("", "pt", "ct", "ptct")


class Field(NamedTuple):
    """One value (or ``repeat`` consecutive values: three phases) in a register map."""

    name: str
    register: int
    kind: str
    repeat: int = 1
    factor: int = 1
    ratio: str = ""

    @property
    def registers(self) -> int:
        """How many registers the field spans."""
        return KINDS[self.kind] * self.repeat


class RegisterMap(NamedTuple):
    """A model's map: ``blocks`` ((start, count) per poll request) and ``fields``; ``readable``
    lists further ranges a master may read (not polled), ``writable`` the ranges it may write.
    The simulator serves exactly these ranges and refuses the rest (exception 2)."""

    model: str
    blocks: tuple[tuple[int, int], ...]
    fields: tuple[Field, ...]
    readable: tuple[tuple[int, int], ...] = ()
    writable: tuple[tuple[int, int], ...] = ()

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def poll_registers(self) -> int:
        """Registers one poll reads (all blocks)."""
        return sum(count for _, count in self.blocks)


def check(regmap: RegisterMap) -> None:
    """Every field must lie inside one block and use a known kind and ratio (a test runs this)."""
    for f in regmap.fields:
        if f.kind not in KINDS or f.ratio not in RATIOS:
            raise ValueError(f"{regmap.model}: field {f.name} has a bad kind or ratio")
        inside = any(
            start <= f.register and f.register + f.registers <= start + count
            for start, count in (*regmap.blocks, *regmap.readable, *regmap.writable)
        )
        if not inside:
            raise ValueError(f"{regmap.model}: field {f.name} lies outside every block")


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


def decode(regmap: RegisterMap, registers: dict[int, int]) -> dict[str, list[int]]:
    """Raw field values (lists, one item per value) from ``{register: word}``. Fields whose
    registers were not read are left out."""
    out: dict[str, list[int]] = {}
    for f in regmap.fields:
        width = KINDS[f.kind]
        if any(f.register + i not in registers for i in range(f.registers)):
            continue
        values = []
        for i in range(f.repeat):
            base = f.register + i * width
            raw = registers[base] if width == 1 else (registers[base] << 16) | registers[base + 1]
            if f.kind == "s16":
                raw = _signed(raw, 16)
            elif f.kind == "s32":
                raw = _signed(raw, 32)
            values.append(raw)
        out[f.name] = values
    return out


def encode(regmap: RegisterMap, values: dict[str, list[int]]) -> dict[int, int]:
    """``{register: word}`` for the given raw field values (the simulator's register image).
    Values out of range are clamped (a real meter's register saturates or wraps; clamping keeps
    a simulated overload visible instead of turning it negative)."""
    out: dict[int, int] = {}
    for f in regmap.fields:
        if f.name not in values:
            continue
        width = KINDS[f.kind]
        bits = 16 * width
        for i, raw in enumerate(values[f.name][: f.repeat]):
            if f.kind.startswith("s"):
                raw = max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, raw)) & ((1 << bits) - 1)
            else:
                raw = raw % (1 << bits) if f.kind == "u32" else max(0, min((1 << bits) - 1, raw))
            base = f.register + i * width
            if width == 1:
                out[base] = raw
            else:
                out[base] = raw >> 16
                out[base + 1] = raw & 0xFFFF
    return out


def ratio_of(field: Field, pt: int, ct: int) -> int:
    """The multiplier that takes ``field`` to the primary side."""
    return {"": 1, "pt": pt, "ct": ct, "ptct": pt * ct}[field.ratio]


def scaled(
    regmap: RegisterMap, raw: dict[str, list[int]], name: str, pt: int, ct: int
) -> list[int]:
    """A field's values in gridvend units, primary side."""
    f = regmap.field(name)
    mult = f.factor * ratio_of(f, pt, ct)
    return [v * mult for v in raw[name]]
