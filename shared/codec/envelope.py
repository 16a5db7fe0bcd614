"""The sync envelope: how a collector and the cloud seal messages for each other (docs/protocol.md).

Theory of operation
-------------------
An envelope is a small binary header followed by AES-256-GCM ciphertext and its 16-byte tag::

    offset size field
    0      2    magic b"GV"
    2      1    version (1)
    3      1    key id (u8)
    4      1    direction (1 = up, 2 = down)
    5      1    gateway id length n (1..64)
    6      n    gateway id (ASCII)
    6+n    8    sequence number (u64, big-endian)
    14+n   8    timestamp (u64, epoch milliseconds, big-endian)
    22+n   …    ciphertext of the body, then the tag

The whole header is the GCM associated data, so changing any header byte fails the tag. The
96-bit nonce is the direction as 4 bytes plus the 8-byte sequence number: a sender must never
seal two different bodies with the same (key, direction, sequence). Callers guarantee that by
taking sequence numbers from a durable reservation and storing the sealed bytes for resending
(never sealing the same number again); this module cannot see across restarts.

The body is compact UTF-8 JSON of an object. Floats are refused in both directions: money and
energy are integers everywhere in gridvend, and a float on the wire is a bug somewhere.

Receivers keep a :class:`ReplayWindow` per (gateway, direction): the highest sequence accepted
and a bitmap of the ``size`` numbers at and below it. ``check`` before applying, ``accept`` once
the contents are durably applied; the window's ``to_dict`` is persisted with them. Sequence
numbers start at 1 (0 is never valid, so a fresh window needs no special case).

Sans-I/O: no sockets, files or clocks; the only import beyond the standard library is the cipher.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.codec.errors import (
    ForgedError,
    MalformedError,
    ReplayError,
    UnknownKeyError,
    UsageError,
)

MAGIC = b"GV"
VERSION = 1
UP = 1
DOWN = 2
DIRECTIONS = {UP: "up", DOWN: "down"}
KEY_BYTES = 32
TAG_BYTES = 16
MAX_GATEWAY_BYTES = 64
MAX_SEQ = (1 << 64) - 1
MAX_TS_MS = (1 << 64) - 1
# Enough for a large batch; a bigger envelope is a sender bug or an attack on our memory.
MAX_ENVELOPE_BYTES = 4 * 1024 * 1024

_FIXED = struct.Struct(">2sBBBB")  # magic, version, key id, direction, gateway length
_TAIL = struct.Struct(">QQ")  # sequence, timestamp ms


class Header:
    """The clear-text header of an envelope (authenticated, not encrypted)."""

    __slots__ = ("direction", "gateway", "key_id", "seq", "ts_ms")

    def __init__(self, key_id: int, direction: int, gateway: str, seq: int, ts_ms: int) -> None:
        self.key_id = key_id
        self.direction = direction
        self.gateway = gateway
        self.seq = seq
        self.ts_ms = ts_ms

    def _astuple(self) -> tuple[int, int, str, int, int]:
        return (self.key_id, self.direction, self.gateway, self.seq, self.ts_ms)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Header) and self._astuple() == other._astuple()

    def __hash__(self) -> int:
        return hash(self._astuple())

    def __repr__(self) -> str:
        return (
            f"Header(key_id={self.key_id}, direction={DIRECTIONS.get(self.direction)!s}, "
            f"gateway={self.gateway!r}, seq={self.seq}, ts_ms={self.ts_ms})"
        )


class Opened:
    """An envelope that authenticated: its header and its decoded JSON body (a dict)."""

    __slots__ = ("body", "header")

    def __init__(self, header: Header, body: dict[str, Any]) -> None:
        self.header = header
        self.body = body

    def __repr__(self) -> str:
        return f"Opened({self.header!r}, body={self.body!r})"


class Keyring:
    """The keys one gateway link holds: ``{key_id: 32-byte key}`` and which one seals.

    Receivers accept every held id, which is how key rotation works: install the new key as
    current, keep the previous one until the peer has switched, then drop it.
    """

    def __init__(self, keys: dict[int, bytes], current: int) -> None:
        if not keys:
            raise UsageError("a keyring needs at least one key")
        checked: dict[int, bytes] = {}
        for key_id, key in keys.items():
            if isinstance(key_id, bool) or not isinstance(key_id, int) or not 0 <= key_id <= 255:
                raise UsageError(f"key id {key_id!r} is not an integer 0..255")
            if not isinstance(key, (bytes, bytearray)) or len(key) != KEY_BYTES:
                raise UsageError(f"key {key_id} must be {KEY_BYTES} bytes (AES-256)")
            checked[key_id] = bytes(key)
        if current not in checked:
            raise UsageError(
                f"current key id {current} is not among the held keys {sorted(checked)}"
            )
        self._keys = checked
        self.current = current
        # One AES-GCM object per key, made when first used (OpenSSL's, through `cryptography`:
        # 1.7 µs to open an envelope of 32 readings against 107 µs with pycryptodome's, which
        # set up GCM in Python for every envelope; pycryptodome stays the tests' independent
        # implementation).
        self._aead: dict[int, AESGCM] = {}

    @property
    def ids(self) -> list[int]:
        """The held key ids, ascending."""
        return sorted(self._keys)

    def key(self, key_id: int) -> bytes:
        """The key with this id; ``UnknownKeyError`` if it is not held."""
        try:
            return self._keys[key_id]
        except KeyError:
            raise UnknownKeyError(
                f"key id {key_id} is not held (held: {self.ids}); provision the key or check "
                "the sender's key file"
            ) from None

    def aead(self, key_id: int) -> AESGCM:
        """The AES-256-GCM cipher of this key id; ``UnknownKeyError`` if it is not held."""
        cipher = self._aead.get(key_id)
        if cipher is None:
            cipher = self._aead[key_id] = AESGCM(self.key(key_id))
        return cipher

    def __repr__(self) -> str:  # never print key material
        return f"Keyring(ids={self.ids}, current={self.current})"


def _nonce(direction: int, seq: int) -> bytes:
    return direction.to_bytes(4, "big") + seq.to_bytes(8, "big")


def _header_bytes(key_id: int, direction: int, gateway: str, seq: int, ts_ms: int) -> bytes:
    gw = gateway.encode("ascii")
    return _FIXED.pack(MAGIC, VERSION, key_id, direction, len(gw)) + gw + _TAIL.pack(seq, ts_ms)


def _refuse_float(value: object) -> Any:
    raise MalformedError(f"body holds a non-integer number {value!r}; gridvend sends integers only")


def _find_float(value: Any, path: str) -> str | None:
    # Iterative walk: bodies are batches of flat messages, recursion depth is small anyway.
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float):
            return where
        if isinstance(item, dict):
            stack.extend((v, f"{where}.{k}") for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
    return None


def encode_body(body: dict[str, Any]) -> bytes:
    """The body as compact UTF-8 JSON; ``UsageError`` for a non-dict, a float or unencodable."""
    if not isinstance(body, dict):
        raise UsageError(f"an envelope body is a JSON object, not {type(body).__name__}")
    where = _find_float(body, "body")
    if where is not None:
        raise UsageError(f"{where} is a float; money, energy and times are integers")
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"body cannot be encoded as JSON: {exc}") from None


def seal(
    ring: Keyring, direction: int, gateway: str, seq: int, ts_ms: int, body: dict[str, Any]
) -> bytes:
    """Seal ``body`` into an envelope with ``ring.current``.

    The caller owns nonce uniqueness: ``seq`` must come from a durable reservation and must
    never be sealed twice (store the returned bytes and resend them instead).
    """
    return seal_encoded(ring, direction, gateway, seq, ts_ms, encode_body(body))


def seal_encoded(
    ring: Keyring, direction: int, gateway: str, seq: int, ts_ms: int, plaintext: bytes
) -> bytes:
    """Like :func:`seal` for a body already encoded by :func:`encode_body` (saves re-encoding
    when a sender sizes its batches by encoded length)."""
    if direction not in DIRECTIONS:
        raise UsageError(f"direction {direction!r} is neither UP (1) nor DOWN (2)")
    if not isinstance(gateway, str) or not gateway:
        raise UsageError("gateway id must be a non-empty string")
    try:
        gw_len = len(gateway.encode("ascii"))
    except UnicodeEncodeError:
        raise UsageError(f"gateway id {gateway!r} must be ASCII") from None
    if gw_len > MAX_GATEWAY_BYTES:
        raise UsageError(f"gateway id {gateway!r} is longer than {MAX_GATEWAY_BYTES} bytes")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise UsageError(f"sequence number {seq!r} is not an integer 1..2^64-1")
    if isinstance(ts_ms, bool) or not isinstance(ts_ms, int) or not 0 <= ts_ms <= MAX_TS_MS:
        raise UsageError(f"timestamp {ts_ms!r} is not an integer of epoch milliseconds")
    header = _header_bytes(ring.current, direction, gateway, seq, ts_ms)
    # ciphertext || 16-byte tag, the header authenticated as associated data
    data = header + ring.aead(ring.current).encrypt(_nonce(direction, seq), plaintext, header)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise UsageError(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}; batch less")
    return data


def _parse_header(data: bytes) -> tuple[Header, int]:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise MalformedError(f"an envelope is bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise MalformedError(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    if len(data) < _FIXED.size:
        raise MalformedError(f"envelope of {len(data)} bytes is shorter than a header")
    magic, version, key_id, direction, gw_len = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise MalformedError(f"bad magic {magic!r}, expected {MAGIC!r}: not a gridvend envelope")
    if version != VERSION:
        raise MalformedError(f"envelope version {version} is not supported (this side speaks 1)")
    if direction not in DIRECTIONS:
        raise MalformedError(f"direction byte {direction} is neither 1 (up) nor 2 (down)")
    if not 1 <= gw_len <= MAX_GATEWAY_BYTES:
        raise MalformedError(f"gateway id length {gw_len} is outside 1..{MAX_GATEWAY_BYTES}")
    end = _FIXED.size + gw_len + _TAIL.size
    if len(data) < end + TAG_BYTES:
        raise MalformedError(f"envelope of {len(data)} bytes is too short for its header and tag")
    raw_gw = data[_FIXED.size : _FIXED.size + gw_len]
    try:
        gateway = raw_gw.decode("ascii")
    except UnicodeDecodeError:
        raise MalformedError(f"gateway id {raw_gw!r} is not ASCII") from None
    seq, ts_ms = _TAIL.unpack_from(data, _FIXED.size + gw_len)
    if seq == 0:
        raise MalformedError("sequence number 0 is never valid")
    return Header(key_id, direction, gateway, seq, ts_ms), end


def peek(data: bytes) -> Header:
    """The header without decrypting (to pick the gateway's keyring); ``MalformedError``."""
    return _parse_header(data)[0]


def open_sealed(
    ring: Keyring,
    data: bytes,
    expect_direction: int,
    expect_gateway: str | None = None,
) -> Opened:
    """Authenticate and decrypt an envelope.

    Raises ``MalformedError`` (unparseable, wrong direction or gateway, bad body),
    ``UnknownKeyError`` (key id not held) or ``ForgedError`` (tag fails: wrong key, tampered
    header or ciphertext). Replay is the caller's :class:`ReplayWindow`'s job.
    """
    header, end = _parse_header(data)
    if header.direction != expect_direction:
        raise MalformedError(
            f"envelope travels {DIRECTIONS[header.direction]}, expected "
            f"{DIRECTIONS.get(expect_direction, expect_direction)}: reflected or misrouted"
        )
    if expect_gateway is not None and header.gateway != expect_gateway:
        raise MalformedError(
            f"envelope is for gateway {header.gateway!r}, expected {expect_gateway!r}"
        )
    cipher = ring.aead(header.key_id)
    raw = bytes(data)
    try:
        plaintext = cipher.decrypt(_nonce(header.direction, header.seq), raw[end:], raw[:end])
    except InvalidTag:
        raise ForgedError(
            f"authentication failed for {header!r}: tampered, forged, or sealed with another key"
        ) from None
    return Opened(header, decode_body(plaintext))


def decode_body(plaintext: bytes) -> dict[str, Any]:
    """Parse an authenticated body; ``MalformedError`` unless it is a JSON object of integers."""
    try:
        body = json.loads(
            plaintext.decode("utf-8"), parse_float=_refuse_float, parse_constant=_refuse_float
        )
    except MalformedError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedError(f"body is not UTF-8 JSON: {exc}") from None
    if not isinstance(body, dict):
        raise MalformedError(f"body is a JSON {type(body).__name__}, expected an object")
    return body


class ReplayWindow:
    """Sliding replay window: the highest accepted sequence and a bitmap of ``size`` below it.

    Bit ``i`` of ``seen`` stands for sequence ``highest - i``. A number more than ``size - 1``
    below ``highest`` is too old and refused, as is one already accepted.
    """

    __slots__ = ("highest", "seen", "size")

    def __init__(self, size: int = 4096) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise UsageError(f"replay window size {size!r} must be a positive integer")
        self.size = size
        self.highest = 0
        self.seen = 1  # sequence 0 counts as seen: it is never valid

    def check(self, seq: int) -> None:
        """Raise ``ReplayError`` if ``seq`` was accepted already or is too old; change nothing."""
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1 or seq > MAX_SEQ:
            raise ReplayError(f"sequence {seq!r} is not a valid sequence number")
        if seq > self.highest:
            return
        offset = self.highest - seq
        if offset >= self.size:
            raise ReplayError(
                f"sequence {seq} is older than the replay window (highest {self.highest}, "
                f"window {self.size})"
            )
        if self.seen >> offset & 1:
            raise ReplayError(f"sequence {seq} was already accepted")

    def accept(self, seq: int) -> None:
        """Record ``seq`` as applied (call after ``check`` and after applying durably)."""
        self.check(seq)
        if seq > self.highest:
            shift = seq - self.highest
            mask = (1 << self.size) - 1
            self.seen = ((self.seen << shift) | 1) & mask if shift < self.size else 1
            self.highest = seq
        else:
            self.seen |= 1 << (self.highest - seq)

    def seen_seq(self, seq: int) -> bool:
        """True if ``seq`` was accepted (False if never seen or beyond the window)."""
        if seq > self.highest or seq < 1:
            return False
        offset = self.highest - seq
        return offset < self.size and bool(self.seen >> offset & 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible snapshot to persist beside the inbox."""
        return {"size": self.size, "highest": self.highest, "seen": format(self.seen, "x")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReplayWindow:
        """Rebuild a window from :meth:`to_dict`; ``MalformedError`` for a damaged snapshot."""
        try:
            window = cls(int(d["size"]))
            highest = d["highest"]
            seen = int(str(d["seen"]), 16)
        except (KeyError, TypeError, ValueError, UsageError) as exc:
            raise MalformedError(f"replay window snapshot is damaged: {exc!r}") from None
        if isinstance(highest, bool) or not isinstance(highest, int) or highest < 0:
            raise MalformedError(f"replay window snapshot has a bad highest {highest!r}")
        if seen >> window.size:
            raise MalformedError("replay window snapshot has bits beyond its size")
        window.highest = highest
        window.seen = seen
        return window

    def __repr__(self) -> str:
        return f"ReplayWindow(size={self.size}, highest={self.highest})"
