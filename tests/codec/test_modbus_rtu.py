"""Modbus RTU framing and CRC, MBAP framing, line timing; stream decoders fed whole, byte by
byte and with garbage; fuzz: decoders never raise on arbitrary input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer.rtu import FramerRTU

from shared.codec import modbus_rtu, modbus_tcp, serial_line
from shared.codec.errors import ChecksumError, FrameError, ModbusExceptionError, UsageError


def test_crc_of_a_textbook_read_request():
    # 01 03 00 00 00 0A -> CRC C5 CD (low byte first), the classic example.
    assert modbus_rtu.encode(1, modbus_rtu.read_registers_pdu(0, 10)).hex(" ") == (
        "01 03 00 00 00 0a c5 cd"
    )


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=255))
def test_crc_matches_pymodbus(data):
    # pymodbus returns the CRC byte-swapped (ready to write big-endian).
    swapped = FramerRTU.compute_CRC(data)
    assert modbus_rtu.crc16(data) == ((swapped & 0xFF) << 8) | (swapped >> 8)


def test_acrel_poll_request_bytes():
    frame = modbus_rtu.encode(1, modbus_rtu.read_registers_pdu(0x0200, 48))
    assert frame.hex(" ") == "01 03 02 00 00 30 44 66"


def _reply(device_id: int, values: list[int]) -> bytes:
    return modbus_rtu.encode(device_id, modbus_rtu.read_reply_pdu(3, values))


def test_reply_decoder_whole_and_byte_by_byte():
    request = modbus_rtu.read_registers_pdu(0x10, 3)
    raw = _reply(5, [1, 2, 0xFFFF])
    assert modbus_rtu.ReplyDecoder(5, request).feed(raw) == raw[1:-2]
    decoder = modbus_rtu.ReplyDecoder(5, request)
    results = [decoder.feed(bytes([b])) for b in raw]
    assert results[:-1] == [None] * (len(raw) - 1)
    assert modbus_rtu.parse_reply(request, results[-1]) == [1, 2, 0xFFFF]


def test_reply_decoder_skips_leading_garbage_and_other_devices():
    request = modbus_rtu.read_registers_pdu(0, 1)
    other = _reply(6, [9])
    raw = _reply(5, [7])
    decoder = modbus_rtu.ReplyDecoder(5, request)
    assert decoder.feed(b"\x00\xff\x13" + other + raw + b"\xaa") == raw[1:-2]
    assert decoder.garbage_bytes >= 3 + len(other)


def test_reply_decoder_flags_a_bad_crc_and_still_takes_a_good_frame_after_it():
    request = modbus_rtu.read_registers_pdu(0, 1)
    raw = _reply(5, [7])
    bad = raw[:-1] + bytes([raw[-1] ^ 1])
    decoder = modbus_rtu.ReplyDecoder(5, request)
    assert decoder.feed(bad) is None
    assert isinstance(decoder.error, ChecksumError)
    assert decoder.feed(raw) == raw[1:-2]


def test_exception_reply_is_a_complete_frame_and_parses_to_the_error():
    request = modbus_rtu.read_registers_pdu(0x9999, 2)
    raw = modbus_rtu.encode(5, modbus_rtu.exception_pdu(3, modbus_rtu.ILLEGAL_DATA_ADDRESS))
    pdu = modbus_rtu.ReplyDecoder(5, request).feed(raw)
    with pytest.raises(ModbusExceptionError) as info:
        modbus_rtu.parse_reply(request, pdu)
    assert info.value.code == 2
    assert info.value.function == 3


def test_mismatched_replies_are_frame_errors():
    request = modbus_rtu.read_registers_pdu(0, 2)
    with pytest.raises(FrameError):
        modbus_rtu.parse_reply(request, modbus_rtu.read_reply_pdu(3, [1]))
    write = modbus_rtu.write_registers_pdu(0x57, [1, 1])
    with pytest.raises(FrameError):
        modbus_rtu.parse_reply(write, bytes([0x10, 0, 0x58, 0, 2]))
    assert modbus_rtu.parse_reply(write, write[:5]) == []


def test_request_decoder_splits_requests_and_resyncs_after_garbage():
    read = modbus_rtu.encode(1, modbus_rtu.read_registers_pdu(0x200, 48))
    write = modbus_rtu.encode(2, modbus_rtu.write_registers_pdu(0x57, [1, 0]))
    decoder = modbus_rtu.RequestDecoder()
    out = decoder.feed(b"\xfe\x01\x03" + read + write)
    assert out == [(1, read[1:-2]), (2, write[1:-2])]
    request = modbus_rtu.parse_request(2, out[1][1])
    assert (request.function, request.address, request.quantity, request.values) == (
        0x10,
        0x57,
        2,
        (1, 0),
    )


def test_request_decoder_byte_by_byte():
    write = modbus_rtu.encode(9, modbus_rtu.write_registers_pdu(0x22, [8]))
    decoder = modbus_rtu.RequestDecoder()
    out = []
    for b in write:
        out += decoder.feed(bytes([b]))
    assert out == [(9, write[1:-2])]


def test_request_with_unknown_function_is_taken_whole_or_dropped_when_idle():
    odd = modbus_rtu.encode(3, b"\x2b\x0e\x01\x00")
    assert modbus_rtu.RequestDecoder().feed(odd) == [(3, b"\x2b\x0e\x01\x00")]
    decoder = modbus_rtu.RequestDecoder()
    assert decoder.feed(b"\x03\x2b\x99") == []
    read = modbus_rtu.encode(1, modbus_rtu.read_registers_pdu(0, 1))
    assert decoder.feed(read) == []  # still waiting for the odd frame to complete
    assert decoder.idle() == [(1, read[1:-2])]


def test_pdu_builders_refuse_what_modbus_cannot_say():
    with pytest.raises(UsageError):
        modbus_rtu.read_registers_pdu(0, 126)
    with pytest.raises(UsageError):
        modbus_rtu.write_registers_pdu(0, [])
    with pytest.raises(UsageError):
        modbus_rtu.write_registers_pdu(0, [70000])
    with pytest.raises(UsageError):
        modbus_rtu.encode(248, b"\x03")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.integers(min_value=1, max_value=9))
def test_decoders_never_raise_on_arbitrary_bytes(data, chunk):
    requests = modbus_rtu.RequestDecoder()
    reply = modbus_rtu.ReplyDecoder(1, modbus_rtu.read_registers_pdu(0, 4))
    for i in range(0, len(data), chunk):
        for device_id, pdu in requests.feed(data[i : i + chunk]):
            assert 0 <= device_id <= 247
            assert pdu
        result = reply.feed(data[i : i + chunk])
        assert result is None or result[0] in (3, 0x83)
    requests.idle()


def test_mbap_round_trip_and_stream():
    pdu = modbus_rtu.read_registers_pdu(0x200, 48)
    raw = modbus_tcp.encode(7, 1, pdu)
    assert raw[:7].hex(" ") == "00 07 00 00 00 06 01"
    decoder = modbus_tcp.Decoder()
    assert decoder.feed(raw[:5]) == []
    assert decoder.feed(raw[5:] + raw) == [(7, 1, pdu), (7, 1, pdu)]


def test_mbap_with_a_wrong_protocol_id_is_a_frame_error():
    raw = bytearray(modbus_tcp.encode(1, 1, b"\x03\x00\x00\x00\x01"))
    raw[3] = 1
    with pytest.raises(FrameError):
        modbus_tcp.Decoder().feed(bytes(raw))


@pytest.mark.parametrize(
    ("baud", "parity", "char_us", "t35"),
    [(9600, "N", 1042, 3646), (9600, "E", 1146, 4011), (2400, "E", 4584, 16042)],
)
def test_line_timing_matches_protocols_table(baud, parity, char_us, t35):
    bits = serial_line.bits_per_char(parity)
    assert serial_line.char_time_us(baud, bits) == char_us
    assert serial_line.t35_us(baud, bits) == t35


def test_t35_is_fixed_above_19200_and_the_acrel_poll_takes_113_ms():
    assert serial_line.t35_us(38400, 10) == 1750
    assert serial_line.wire_time_us(109, 9600, 10) == 113542
    # 32 meters, 20 ms turnaround: the ≈ 4.5 s floor of protocols.md §4.
    per_meter = serial_line.transaction_time_us(8, 101, 9600, 10, 20_000)
    assert 4_400_000 < 32 * per_meter < 4_600_000


def test_bad_line_settings_are_usage_errors():
    with pytest.raises(UsageError):
        serial_line.bits_per_char("X")
    with pytest.raises(UsageError):
        serial_line.char_time_us(0)
