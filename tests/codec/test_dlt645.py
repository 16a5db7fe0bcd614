"""DL/T 645-2007 codec: the public capture, streaming (whole, byte by byte, garbage), errors,
BCD and the data table, and a fuzz property: any input gives frames or a ProtocolError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.codec import dlt645
from shared.codec.errors import (
    ChecksumError,
    Dlt645ErrorReply,
    Dlt645UnauthorizedError,
    FrameError,
    ProtocolError,
    UsageError,
)

# protocols.md §3: a public captured read frame.
CAPTURE = bytes.fromhex("FE FE FE FE 68 08 02 02 41 22 00 68 11 04 35 37 33 37 2A 16")


def test_read_request_reproduces_the_public_capture_byte_for_byte():
    frame = dlt645.read_request("002241020208", 0x04000402)
    assert dlt645.encode(frame) == CAPTURE


def test_public_capture_decodes_to_a_read_of_the_meter_number():
    (frame,) = dlt645.Decoder().feed(CAPTURE)
    assert frame.address == "002241020208"
    assert frame.control == dlt645.C_READ
    assert not frame.is_reply
    assert frame.data == (0x04000402).to_bytes(4, "little")
    assert dlt645.item(0x04000402).name == "meter_number"


def _frames() -> list[dlt645.Frame]:
    return [
        dlt645.read_request("000000000001", dlt645.DI_ENERGY_BLOCK),
        dlt645.read_reply("000000000001", dlt645.DI_ENERGY_BLOCK, bytes(range(20))),
        dlt645.error_reply("123456789012", dlt645.C_RELAY, 0x04),
        dlt645.broadcast_time_request((2026, 1, 2, 3, 4, 5)),
        dlt645.read_address_request(),
    ]


def test_frames_fed_whole_decode_in_order():
    stream = b"".join(dlt645.encode(f) for f in _frames())
    assert dlt645.Decoder().feed(stream) == _frames()


def test_frames_fed_byte_by_byte_decode_in_order():
    stream = b"".join(dlt645.encode(f) for f in _frames())
    decoder = dlt645.Decoder()
    out = []
    for byte in stream:
        out.extend(decoder.feed(bytes([byte])))
    assert out == _frames()


def test_leading_and_trailing_garbage_is_skipped():
    frame = _frames()[1]
    decoder = dlt645.Decoder()
    junk = b"\x00\x16\x68\x01\xff"  # includes a false start byte
    assert decoder.feed(junk + dlt645.encode(frame) + b"\x13\x37") == [frame]
    assert decoder.garbage_bytes >= len(junk)
    # Trailing junk stays harmless: the next frame still decodes.
    assert decoder.feed(dlt645.encode(frame, preamble=0)) == [frame]


def test_bad_checksum_raises_and_the_stream_continues_with_the_next_frame():
    good = dlt645.encode(_frames()[0])
    bad = bytearray(dlt645.encode(_frames()[1]))
    bad[-2] ^= 0xFF
    decoder = dlt645.Decoder()
    with pytest.raises(ChecksumError):
        decoder.feed(bytes(bad) + good)
    assert decoder.feed(b"") == [_frames()[0]]


def test_frames_before_a_bad_one_are_returned_and_the_error_comes_next_call():
    good = dlt645.encode(_frames()[0])
    bad = bytearray(dlt645.encode(_frames()[1]))
    bad[-2] ^= 0x01
    decoder = dlt645.Decoder()
    assert decoder.feed(good + bytes(bad)) == [_frames()[0]]
    with pytest.raises(ChecksumError):
        decoder.feed(b"")
    assert decoder.feed(b"") == []


def test_data_bytes_travel_plus_33h():
    frame = dlt645.Frame("000000000001", 0x91, b"\x00\xcd\xff")
    raw = dlt645.encode(frame, preamble=0)
    assert raw[10:13] == bytes([0x33, 0x00, 0x32])


def test_abnormal_reply_with_err_bit_2_is_unauthorized_and_says_so():
    request = dlt645.relay_request(
        "000000000007", dlt645.RELAY_TRIP, (2026, 5, 1, 12, 0, 0), b"\x02\0\0\0", b"\0" * 4
    )
    reply = dlt645.error_reply("000000000007", dlt645.C_RELAY, 0x04)
    with pytest.raises(Dlt645UnauthorizedError) as info:
        dlt645.check_reply(request, reply)
    assert "not authorised" in str(info.value)
    assert info.value.err == 0x04


def test_abnormal_reply_lists_the_err_reasons():
    request = dlt645.read_request("000000000007", 0x12345678)
    reply = dlt645.error_reply("000000000007", dlt645.C_READ, 0x02)
    with pytest.raises(Dlt645ErrorReply) as info:
        dlt645.check_reply(request, reply)
    assert not isinstance(info.value, Dlt645UnauthorizedError)
    assert info.value.reasons == ["no data requested"]


def test_reply_from_another_meter_does_not_answer():
    request = dlt645.read_request("000000000001", dlt645.DI_POWER)
    reply = dlt645.read_reply("000000000002", dlt645.DI_POWER, b"\0\0\0")
    assert not dlt645.answers(request, reply)
    with pytest.raises(FrameError):
        dlt645.check_reply(request, reply)


def test_read_reply_must_echo_the_di():
    request = dlt645.read_request("000000000001", dlt645.DI_POWER)
    reply = dlt645.read_reply("000000000001", dlt645.DI_FREQUENCY, b"\0\0")
    with pytest.raises(FrameError):
        dlt645.parse_read_reply(request, reply)


def test_follow_up_reply_strips_its_sequence_byte_and_reports_more():
    first = dlt645.read_request("000000000001", dlt645.DI_ENERGY_BLOCK)
    data, more = dlt645.parse_read_reply(
        first, dlt645.read_reply("000000000001", dlt645.DI_ENERGY_BLOCK, b"\x01\x02", more=True)
    )
    assert (data, more) == (b"\x01\x02", True)
    follow = dlt645.read_followup_request("000000000001", dlt645.DI_ENERGY_BLOCK, 1)
    reply = dlt645.read_followup_reply("000000000001", dlt645.DI_ENERGY_BLOCK, b"\x03", 1, False)
    assert dlt645.parse_read_reply(follow, reply) == (b"\x03", False)


def test_relay_request_layout_has_l_16_and_n1_after_the_credentials():
    frame = dlt645.relay_request(
        "000000000003",
        dlt645.RELAY_KEEP_POWER,
        (2026, 12, 31, 23, 59, 58),
        bytes.fromhex("02123456"),
        bytes.fromhex("01020304"),
    )
    assert frame.control == 0x1C
    assert len(frame.data) == 16
    assert frame.data[:8] == bytes.fromhex("0212345601020304")
    assert frame.data[8:10] == b"\x3a\x00"
    assert frame.data[10:] == bytes.fromhex("585923311226")  # ssmmhhDDMMYY in BCD
    raw = dlt645.encode(frame, preamble=0)
    assert raw[9] == 0x10


def test_broadcast_time_goes_to_the_all_9_address_with_function_08():
    frame = dlt645.broadcast_time_request((2026, 3, 4, 5, 6, 7))
    assert frame.address == dlt645.BROADCAST
    assert frame.control == 0x08
    assert dlt645.parse_datetime_bytes(frame.data) == (2026, 3, 4, 5, 6, 7)


def test_write_request_carries_di_password_operator_then_data():
    frame = dlt645.write_request(
        "000000000001", 0x04001001, b"\x00\x20\x00\x00", b"\x02\0\0\0", b"\xaa\xbb\xcc\xdd"
    )
    assert frame.control == 0x14
    assert frame.data == bytes.fromhex("01100004") + b"\x02\0\0\0\xaa\xbb\xcc\xdd\x00\x20\0\0"


@pytest.mark.parametrize(
    ("value", "nbytes", "signed", "raw"),
    [
        (12345678, 4, False, "78563412"),
        (0, 2, False, "0000"),
        (-1234, 3, True, "341280"),
        (799999, 3, True, "999979"),
    ],
)
def test_bcd_round_trips_low_byte_first(value, nbytes, signed, raw):
    assert dlt645.bcd_encode(value, nbytes, signed).hex() == raw
    assert dlt645.bcd_decode(bytes.fromhex(raw), signed) == value


def test_bcd_with_a_nibble_above_9_is_a_frame_error():
    with pytest.raises(FrameError):
        dlt645.bcd_decode(b"\x1a")


def test_bcd_that_does_not_fit_is_a_usage_error():
    with pytest.raises(UsageError):
        dlt645.bcd_encode(10000, 2)
    with pytest.raises(UsageError):
        dlt645.bcd_encode(800000, 3, signed=True)
    with pytest.raises(UsageError):
        dlt645.bcd_encode(-1, 2)


def test_bad_addresses_are_usage_errors():
    for address in ("12345", "00000000000X", "0000000000001"):
        with pytest.raises(UsageError):
            dlt645.read_request(address, 0)
    assert dlt645.normalise_address(5) == "000000000005"


def test_data_items_decode_in_their_units():
    block = dlt645.encode_item(dlt645.DI_ENERGY_BLOCK, [123456, 1, 2, 3, 4])
    assert dlt645.decode_item(dlt645.DI_ENERGY_BLOCK, block) == [123456, 1, 2, 3, 4]
    currents = dlt645.encode_item(dlt645.DI_CURRENTS, [1500, -20, 0])
    assert dlt645.decode_item(dlt645.DI_CURRENTS, currents) == [1500, -20, 0]
    when = [2026, 2, 28, 6, 23, 59, 1]
    assert (
        dlt645.decode_item(dlt645.DI_DATETIME, dlt645.encode_item(dlt645.DI_DATETIME, when)) == when
    )
    status = dlt645.encode_item(dlt645.DI_STATUS3, [dlt645.STATUS3_RELAY_OPEN | 1 << 12])
    assert status == b"\x10\x10"
    with pytest.raises(FrameError):
        dlt645.decode_item(dlt645.DI_POWER, b"\0\0")
    with pytest.raises(UsageError):
        dlt645.item(0x99999999)


def test_oversized_data_is_refused_when_encoding():
    with pytest.raises(UsageError):
        dlt645.encode(dlt645.Frame("000000000001", 0x91, bytes(201)))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=7))
def test_any_input_yields_frames_or_a_protocol_error(data, chunk):
    decoder = dlt645.Decoder()
    for i in range(0, len(data) + 1, chunk):
        piece = data[i : i + chunk]
        for _ in range(len(data) + 2):  # keep calling after errors: it must drain
            try:
                frames = decoder.feed(piece)
            except ProtocolError:
                piece = b""
                continue
            assert all(isinstance(f, dlt645.Frame) for f in frames)
            break


_frame_strategy = st.builds(
    dlt645.Frame,
    st.integers(min_value=0, max_value=999_999_999_999).map(lambda n: f"{n:012d}"),
    st.integers(min_value=0, max_value=255),
    st.binary(max_size=dlt645.MAX_DATA),
)


@settings(max_examples=200, deadline=None)
@given(_frame_strategy, st.binary(max_size=20).map(lambda b: b.replace(b"\x68", b"")))
def test_any_frame_survives_garbage_before_it(frame, junk):
    assert dlt645.Decoder().feed(junk + dlt645.encode(frame)) == [frame]
