"""The sync envelope: sealing, opening, every way a bad envelope is refused, the replay window."""

from __future__ import annotations

import json

import pytest
from Crypto.Cipher import AES
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.codec import envelope
from shared.codec.errors import (
    EnvelopeError,
    ForgedError,
    MalformedError,
    ReplayError,
    UnknownKeyError,
    UsageError,
)

KEY1 = bytes(range(32))
KEY2 = bytes(range(32, 64))
BODY = {"v": 1, "m": [{"t": "hb", "ts": 1767225600, "backlog": 0, "buses": {}, "uptime_s": 5}]}


def ring(current: int = 1) -> envelope.Keyring:
    return envelope.Keyring({1: KEY1, 2: KEY2}, current=current)


def sealed(seq: int = 42, direction: int = envelope.UP, gateway: str = "gw-01") -> bytes:
    return envelope.seal(
        ring(), direction=direction, gateway=gateway, seq=seq, ts_ms=1767225600123, body=BODY
    )


def test_sealed_envelope_opens_to_the_same_header_and_body() -> None:
    data = sealed()
    opened = envelope.open_sealed(ring(), data, expect_direction=envelope.UP)
    assert opened.header == envelope.Header(1, envelope.UP, "gw-01", 42, 1767225600123)
    assert opened.body == BODY


def test_header_layout_matches_the_protocol_document() -> None:
    data = sealed(seq=0x0102030405060708)
    assert data[:2] == b"GV"
    assert data[2] == 1  # version
    assert data[3] == 1  # key id
    assert data[4] == 1  # direction up
    assert data[5] == 5  # len("gw-01")
    assert data[6:11] == b"gw-01"
    assert data[11:19] == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert int.from_bytes(data[19:27], "big") == 1767225600123
    plaintext = json.dumps(BODY, separators=(",", ":")).encode()
    assert len(data) == 27 + len(plaintext) + 16


def test_known_answer_vector_is_stable() -> None:
    # A fixed vector, so the cloud side (or another language) can check its implementation.
    data = envelope.seal(
        envelope.Keyring({7: bytes(32)}, current=7),
        direction=envelope.DOWN,
        gateway="g",
        seq=1,
        ts_ms=0,
        body={"v": 1, "m": []},
    )
    assert data.hex() == (
        "475601070201"  # GV, version 1, key 7, down, gateway length 1
        "67"  # "g"
        "0000000000000001"  # sequence 1
        "0000000000000000"  # timestamp 0
        "75f7dd547428591d51ccfeb7b966"  # ciphertext of {"v":1,"m":[]}
        "669f373c0cd29939f26389f563760797"  # tag
    )
    # AES-256-GCM, zero key, nonce 00000002 0000000000000001, AAD the 23-byte header.

    cipher = AES.new(bytes(32), AES.MODE_GCM, nonce=bytes.fromhex("000000020000000000000001"))
    cipher.update(data[:23])
    assert cipher.decrypt_and_verify(data[23:-16], data[-16:]) == b'{"v":1,"m":[]}'


def test_peek_reads_the_header_without_any_key() -> None:
    head = envelope.peek(sealed(seq=9, gateway="floor-3"))
    assert (head.key_id, head.direction, head.gateway, head.seq) == (1, envelope.UP, "floor-3", 9)


@pytest.mark.parametrize("index", range(27))
def test_changing_any_header_byte_is_refused(index: int) -> None:
    data = bytearray(sealed())
    data[index] ^= 0x01
    with pytest.raises(EnvelopeError):
        envelope.open_sealed(ring(), bytes(data), expect_direction=envelope.UP)


@pytest.mark.parametrize("index", [0, 5, -17, -1])
def test_tampered_ciphertext_or_tag_is_forged(index: int) -> None:
    data = bytearray(sealed())
    data[27 + index if index >= 0 else index] ^= 0x80
    with pytest.raises(ForgedError):
        envelope.open_sealed(ring(), bytes(data), expect_direction=envelope.UP)


def test_tampered_sequence_is_forged_not_accepted_as_another_number() -> None:
    data = bytearray(sealed(seq=42))
    data[18] = 43
    with pytest.raises(ForgedError):
        envelope.open_sealed(ring(), bytes(data), expect_direction=envelope.UP)


def test_wrong_key_with_same_id_is_forged() -> None:
    other = envelope.Keyring({1: bytes(32)}, current=1)
    with pytest.raises(ForgedError):
        envelope.open_sealed(other, sealed(), expect_direction=envelope.UP)


def test_unknown_key_id_is_refused_by_name() -> None:
    only2 = envelope.Keyring({2: KEY2}, current=2)
    with pytest.raises(UnknownKeyError, match="key id 1 is not held"):
        envelope.open_sealed(only2, sealed(), expect_direction=envelope.UP)


def test_key_rotation_accepts_previous_and_current_key() -> None:
    old = envelope.seal(ring(1), envelope.UP, "gw", 1, 0, BODY)
    new = envelope.seal(ring(2), envelope.UP, "gw", 2, 0, BODY)
    assert envelope.peek(new).key_id == 2
    receiver = ring(2)
    assert envelope.open_sealed(receiver, old, envelope.UP).body == BODY
    assert envelope.open_sealed(receiver, new, envelope.UP).body == BODY


def test_reflected_envelope_is_refused_for_its_direction() -> None:
    down = sealed(direction=envelope.DOWN)
    with pytest.raises(MalformedError, match="expected up"):
        envelope.open_sealed(ring(), down, expect_direction=envelope.UP)


def test_envelope_for_another_gateway_is_refused_when_gateway_is_expected() -> None:
    with pytest.raises(MalformedError, match="expected 'gw-02'"):
        envelope.open_sealed(ring(), sealed(), envelope.UP, expect_gateway="gw-02")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"GV",
        b"XX\x01\x01\x01\x01g" + bytes(32),
        b"GV\x02\x01\x01\x01g" + bytes(32),  # version 2
        b"GV\x01\x01\x03\x01g" + bytes(32),  # direction 3
        b"GV\x01\x01\x01\x00" + bytes(40),  # empty gateway
        b"GV\x01\x01\x01\x01g" + bytes(16),  # too short for tag
        b"GV\x01\x01\x01\x01\xff" + bytes(40),  # gateway not ASCII
        b"GV\x01\x01\x01\x01g" + bytes(8) + bytes(8) + bytes(16),  # sequence 0
    ],
)
def test_malformed_envelopes_are_refused(data: bytes) -> None:
    with pytest.raises(MalformedError):
        envelope.peek(data)
    with pytest.raises(MalformedError):
        envelope.open_sealed(ring(), data, envelope.UP)


def _seal_plaintext(plaintext: bytes) -> bytes:
    return envelope.seal_encoded(ring(), envelope.UP, "gw", 5, 0, plaintext)


@pytest.mark.parametrize(
    "plaintext", [b"not json", b"[1,2]", b'{"v":1.5}', b'{"x":NaN}', b"\xff\xfe", b'"s"']
)
def test_authentic_but_bad_body_is_malformed(plaintext: bytes) -> None:
    with pytest.raises(MalformedError):
        envelope.open_sealed(ring(), _seal_plaintext(plaintext), envelope.UP)


def test_sealing_refuses_floats_and_bad_arguments() -> None:
    with pytest.raises(UsageError, match=r"body\.m\[0\]\.x is a float"):
        envelope.seal(ring(), envelope.UP, "gw", 1, 0, {"m": [{"x": 1.0}]})
    with pytest.raises(UsageError):
        envelope.seal(ring(), envelope.UP, "gw", 0, 0, BODY)
    with pytest.raises(UsageError):
        envelope.seal(ring(), envelope.UP, "gw", 1 << 64, 0, BODY)
    with pytest.raises(UsageError):
        envelope.seal(ring(), 3, "gw", 1, 0, BODY)
    with pytest.raises(UsageError):
        envelope.seal(ring(), envelope.UP, "g" * 65, 1, 0, BODY)
    with pytest.raises(UsageError):
        envelope.seal(ring(), envelope.UP, "gé", 1, 0, BODY)
    with pytest.raises(UsageError):
        envelope.seal(ring(), envelope.UP, "gw", 1, 0, [1])  # type: ignore[arg-type]


def test_keyring_refuses_bad_keys_and_hides_them_in_repr() -> None:
    with pytest.raises(UsageError):
        envelope.Keyring({1: bytes(16)}, current=1)
    with pytest.raises(UsageError):
        envelope.Keyring({256: bytes(32)}, current=256)
    with pytest.raises(UsageError):
        envelope.Keyring({1: bytes(32)}, current=2)
    with pytest.raises(UsageError):
        envelope.Keyring({}, current=1)
    assert KEY1.hex() not in repr(ring())


def test_nonce_differs_by_direction_so_the_same_number_both_ways_is_safe() -> None:
    up = envelope.seal(ring(), envelope.UP, "gw", 7, 0, BODY)
    down = envelope.seal(ring(), envelope.DOWN, "gw", 7, 0, BODY)
    assert up[23:] != down[23:]


# --- the replay window -------------------------------------------------------------------


def test_replay_window_refuses_a_repeat_and_a_too_old_number() -> None:
    window = envelope.ReplayWindow(size=64)
    window.check(10)
    window.accept(10)
    with pytest.raises(ReplayError, match="already"):
        window.check(10)
    window.accept(9)  # below the highest but inside the window: fine once
    with pytest.raises(ReplayError):
        window.accept(9)
    window.accept(100)
    with pytest.raises(ReplayError, match="older"):
        window.check(36)  # 100 - 36 = 64 = size
    window.check(37)
    with pytest.raises(ReplayError):
        window.check(0)


def test_replay_window_check_changes_nothing() -> None:
    window = envelope.ReplayWindow()
    window.check(5)
    window.check(5)
    assert window.to_dict() == envelope.ReplayWindow().to_dict()


def test_replay_window_survives_a_round_trip_through_json() -> None:
    window = envelope.ReplayWindow(size=4096)
    for seq in (3, 1, 5000, 4999, 905):
        window.accept(seq)
    again = envelope.ReplayWindow.from_dict(json.loads(json.dumps(window.to_dict())))
    for seq in (5000, 4999, 905):
        with pytest.raises(ReplayError):
            again.check(seq)
    again.check(4998)
    again.check(5001)
    with pytest.raises(ReplayError):
        again.check(904)  # older than 5000 - 4096 + 1


@pytest.mark.parametrize(
    "snapshot",
    [
        {},
        {"size": 8, "highest": -1, "seen": "1"},
        {"size": 8, "highest": 3, "seen": "zz"},
        {"size": 8, "highest": 3, "seen": "1ff"},
        {"size": 0, "highest": 3, "seen": "1"},
    ],
)
def test_damaged_window_snapshot_is_refused(snapshot: dict[str, object]) -> None:
    with pytest.raises(MalformedError):
        envelope.ReplayWindow.from_dict(snapshot)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=300), max_size=80))
def test_replay_window_accepts_each_number_at_most_once(seqs: list[int]) -> None:
    window = envelope.ReplayWindow(size=32)
    accepted: list[int] = []
    for seq in seqs:
        try:
            window.accept(seq)
        except ReplayError:
            # refused: a repeat, or older than the window at that moment
            assert seq in accepted or seq <= max(accepted) - 32
            continue
        assert seq not in accepted
        accepted.append(seq)
    for seq in accepted:
        assert window.seen_seq(seq) or seq <= max(accepted) - 32


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_either_open_or_raise_an_envelope_error(data: bytes) -> None:
    try:
        envelope.peek(data)
    except MalformedError:
        pass
    with pytest.raises(EnvelopeError):
        envelope.open_sealed(ring(), data, envelope.UP)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=0, max_value=255))
def test_any_single_bit_flip_in_a_sealed_envelope_is_refused(position: int, mask: int) -> None:
    data = bytearray(sealed())
    data[position % len(data)] ^= mask or 1
    with pytest.raises(EnvelopeError):
        envelope.open_sealed(ring(), bytes(data), envelope.UP)
