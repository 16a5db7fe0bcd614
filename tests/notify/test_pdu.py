"""The SMS PDU codec against published PDUs, plus round-trip and fuzz properties.

Sources of the vectors (each is a PDU someone published with its meaning):
- GSM 03.40 walk-through (dreamfabric, Nokia 6110 notes; quoted in many AT guides):
  ``AT+CMGS=23`` / ``0011000B916407281553F80000AA0AE8329BFD4697D9EC37`` = "hellohello".
- python-gsmmodem ``test/test_pdu.py`` (faucamp): SUBMIT, UCS2, concatenated 7-bit, status
  reports (one from diafaan's examples, one a semi-invalid ZTE capture).
- node-sms-pdu README (futomi): 7-bit, UCS2 and a three-part long text.
- Neoway N11 AT manual: UCS2 "hello" with an empty SMSC field.
- Chinese AT examples: "工作愉快！" (5DE5 4F5C 6109 5FEB FF01) to +86 numbers with an SMSC.
- amro.blogspot.com "receiving an SMS status report message": a ``+CDS`` PDU without SMSC.
- nRF9160 AT reference ``+CDS`` example: its PDU lacks TP-MR (24 octets for ``+CDS: 25``),
  so a strict decoder must refuse it.
"""

from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.notify.sms import gsm7, pdu


def _ts(*args: int, hours: float = 0) -> int:
    return int(datetime(*args, tzinfo=timezone(timedelta(hours=hours))).timestamp())


SUBMITS = [
    # (number, text, options, expected hex)
    ("+46708251358", "hellohello", {"validity_vp": 0xAA, "status_report": False},
     "0011000B916407281553F80000AA0AE8329BFD4697D9EC37"),
    ("+27820001111", "Hello World!", {"status_report": False},
     "0001000B917228001011F100000CC8329BFD065DDF72363904"),
    ("+123456789", "世界您好！", {"validity_vp": 0xF4, "smsc": "+44000000000", "status_report": False},
     "07914400000000F01100099121436587F90008F40A4E16754C60A8597DFF01"),
    ("09012345678", "How are you doing?", {"status_report": False},
     "0001000B819010325476F8000012C8F71D14969741F9771D447EA7DDE71F"),
    ("09012345678", "こんにちわ", {"status_report": False},
     "0001000B819010325476F800080A30533093306B3061308F"),
    ("13421839693", "hello", {"status_report": False, "encoding": "ucs2"},
     "0001000B813124819396F300080A00680065006C006C006F"),
    ("+8613551207166", "工作愉快！", {"validity_vp": 0xB0, "smsc": "+8613800230500", "status_report": False},
     "0891683108200305F011000D91683155217061F60008B00A5DE54F5C61095FEBFF01"),
    # Published as the TPDU for AT+CMGS=25; here after an empty SMSC field.
    ("+8613602433649", "工作愉快！", {"validity_vp": 0x00, "status_report": False},
     "0011000D91683106423346F90008000A5DE54F5C61095FEBFF01"),
]  # fmt: skip


@pytest.mark.parametrize(("number", "text", "options", "expected"), SUBMITS)
def test_submit_pdu_matches_the_published_one(
    number: str, text: str, options: dict, expected: str
) -> None:
    [part] = pdu.encode_submit(number, text, **options)
    assert part.hex == expected
    smsc_octets = int(expected[:2], 16) + 1
    assert part.tpdu_length == len(expected) // 2 - smsc_octets  # what AT+CMGS= takes
    back = pdu.decode_submit(expected)
    assert (back.number, back.text) == (number, text)


LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipisicing elit, sed do eiusmod tempor incididunt"
    " ut labore et dolore magna aliqua.Ut enim ad minim veniam, quinostrud exercitation ullamco"
    " laboris nisi ut aliquip ex ea commodo consequat.Duis aute irure dolor in reprehenderit in"
    " voluptate velit esse cillum doloe eu fugiat nulla pariatur.Excepteur sint occaecat"
    " cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum"
)
LOREM_PDUS = [
    "0045000B915121551532F40000A0050003000301986F79B90D4AC3E7F53688FC66BFE5A0799A0E0AB7CB741668FC76CFCB637A995E9783C2E4343C3D4F8FD3EE33A8CC4ED359A079990C22BF41E5747DDE7E9341F4721BFE9683D2EE719A9C26D7DD74509D0E6287C56F791954A683C86FF65B5E06B5C36777181466A7E3F5B0AB4A0795DDE936284C06B5D3EE741B642FBBD3E1360B14AFA7DD",
    "0045000B915121551532F40000A0050003000302DE73BABC4E0695F165F9384D0FD3D36F37A8CE6687DBE337881D16BFE5E939C89D9EA741753A28CC4EC7EB6938A88C0795C3A0F1BBDD7E93DFA0F1DB3D2FC7EB61BA8B584FCF41E13ABD0C4ACBEBF23288FC66BFE5A0B41B242FC3E56574D94D2ECBD37450DA0DB2BFD975383D4C2F83EC65769A0E2ACFE765D038CD66D7DB20F29BFD2E83CA",
    "0045000B915121551532F400008C050003000303EA2073FD9C0ED341EE3A9B1D06C1C3F274985E97BB8AF871194E2FD7E5A079DA4D07BDC7E370791CA683C675789A1CA687E920F7DB0D82CBDF6972D94D6781E675371D947683C675363C0C8AD7D3A0B7D99C1EA7C32072795E96D7DD7450FBCD66A7E9A0B03BDD06A5C9A0F29C0E6287C56F79BD0D",
]


def test_long_gsm_text_is_three_concatenated_segments_as_published() -> None:
    parts = pdu.encode_submit(
        "+15125551234", LOREM, status_report=False, reject_duplicates=True, concat_ref=0
    )
    assert [p.hex for p in parts] == LOREM_PDUS
    assert [(p.seq, p.total) for p in parts] == [(1, 3), (2, 3), (3, 3)]
    decoded = [pdu.decode_submit(h) for h in LOREM_PDUS]
    assert [d.concat for d in decoded] == [(0, 3, 1), (0, 3, 2), (0, 3, 3)]
    assert "".join(d.text for d in decoded) == LOREM
    assert [len(d.text) for d in decoded] == [153, 153, len(LOREM) - 306]


def test_node_sms_pdu_long_text_segments_match_its_readme() -> None:
    text = (
        "SMS (short message service) is a text messaging service component of most telephone,"
        " Internet, and mobile device systems. It uses standardized communication protocols to"
        " enable mobile devices to exchange short text messages. An intermediary service can"
        " facilitate a text-to-voice conversion to be sent to landlines."
    )
    parts = pdu.encode_submit("09012345678", text, status_report=False)
    # The README prints the first two segments cut short ("...") and the last in full.
    assert parts[0].hex.startswith("0041000B819010325476F80000A0050003000301A6CD29083547BFE57450BB")
    assert parts[1].hex.startswith("0041000B819010325476F80000A0050003000302D26F37082E7FD3DFE3377B")
    assert parts[2].hex == "0041000B819010325476F8000010050003000303C26E323BED2ECF5D"
    assert [p.tpdu_length for p in parts] == [153, 153, 27]


DECODES = [
    ("07911326040000F0310D0B911326880736F40000A90FF7FBDD454E87CDE1B0DB357EB701",
     {"number": "+31628870634", "smsc": "+31624000000", "validity_vp": 0xA9,
      "text": "www.diafaan.com", "status_report": True}),
    ("07914346466554F601000B914316565811F9000806304253F68449",
     {"number": "+34616585119", "smsc": "+34646456456", "text": "あ叶葉", "encoding": "ucs2"}),
    ("0591721891F101000B917228214365F700040C48656C6C6F20776F726C6421",
     {"number": "+27821234567", "smsc": "+2781191", "text": "Hello world!", "encoding": "8bit"}),
    ("058178563412110008812143658700000B2B54741914AFA7C76B9058FEBEBB41E6371EA4AEB7E173D0DB5E9683E8E832881DD6E741E4F719",
     {"number": "12345678", "smsc": "87654321", "text": "The quick brown fox jumps over the lazy dog"}),
]  # fmt: skip


@pytest.mark.parametrize(("hex_pdu", "expected"), DECODES)
def test_published_submit_pdus_decode(hex_pdu: str, expected: dict) -> None:
    got = pdu.decode_submit(hex_pdu)
    for key, value in expected.items():
        assert getattr(got, key) == value, key


def test_status_report_from_diafaan_decodes_with_its_times() -> None:
    report = pdu.decode_status_report("0006D60B911326880736F4111011719551401110117195714000", 25)
    assert (report.mr, report.recipient, report.status) == (214, "+31628870634", 0)
    assert report.sc_ts == _ts(2011, 1, 11, 17, 59, 15, hours=1)
    assert report.discharge_ts == _ts(2011, 1, 11, 17, 59, 17, hours=1)
    assert report.outcome == pdu.DELIVERED


def test_status_report_without_smsc_field_is_told_apart_by_the_cds_length() -> None:
    hex_pdu = "06000B910221815716F2709021510121807090215101718000"
    report = pdu.decode_status_report(hex_pdu, len(hex_pdu) // 2)
    assert (report.mr, report.recipient, report.smsc) == (0, "+20121875612", None)
    assert report.sc_ts == _ts(2007, 9, 12, 15, 10, 12, hours=2)
    assert report.discharge_ts == _ts(2007, 9, 12, 15, 10, 17, hours=2)


def test_semi_invalid_zte_status_report_still_gives_reference_and_times() -> None:
    report = pdu.decode_status_report(
        "0297F1061C0F910B487228297020F5317062419272803170624192138000"
    )
    assert report.mr == 28
    assert report.sc_ts == _ts(2013, 7, 26, 14, 29, 27, hours=2)
    assert report.discharge_ts == _ts(2013, 7, 26, 14, 29, 31, hours=2)


def test_nordic_example_missing_its_message_reference_is_refused() -> None:
    with pytest.raises(pdu.PduDecodeError, match="length 25"):
        pdu.decode_status_report("060C91534810325476171160316255001711603152120000", 25)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(0x00, "delivered"), (0x02, "delivered"), (0x20, "pending"), (0x30, "pending"),
     (0x41, "failed"), (0x45, "failed"), (0x60, "failed"), (0x7F, "failed")],
)  # fmt: skip
def test_status_values_map_to_outcomes_per_ts_23040(status: int, outcome: str) -> None:
    assert pdu.status_outcome(status) == outcome


def test_segment_limits_are_160_and_153_septets_70_and_67_ucs2_units() -> None:
    assert gsm7.split("a" * 160) == ("gsm7", ["a" * 160])
    enc, parts = gsm7.split("a" * 161)
    assert enc == "gsm7"
    assert [len(p) for p in parts] == [153, 8]
    assert gsm7.split("电" * 70) == ("ucs2", ["电" * 70])
    enc, parts = gsm7.split("电" * 71)
    assert enc == "ucs2"
    assert [len(p) for p in parts] == [67, 4]
    # An extension character costs two septets and is never cut from its escape.
    assert gsm7.split("€" * 80) == ("gsm7", ["€" * 80])
    enc, parts = gsm7.split("€" * 81)
    assert enc == "gsm7"
    assert [len(p) for p in parts] == [76, 5]
    # A character outside the BMP is a surrogate pair in UCS2/UTF-16: never cut in two.
    enc, parts = gsm7.split("电" * 66 + "😀" + "电" * 3)
    assert [gsm7.ucs2_units(p) for p in parts] == [66, 5]


def test_chinese_alarm_text_with_digits_goes_as_ucs2_in_two_parts() -> None:
    text = "【园区电费】尊敬的用户，您的单元A-101电表余额为12.34元，已低于报警值1，请尽快充值，以免断电。"
    text = text * 2
    parts = pdu.encode_submit("+8613800138000", text, concat_ref=7)
    decoded = [pdu.decode_submit(p.hex) for p in parts]
    assert all(d.encoding == "ucs2" and d.status_report for d in decoded)
    assert [d.concat for d in decoded] == [(7, len(parts), i) for i in range(1, len(parts) + 1)]
    assert "".join(d.text for d in decoded) == text


def test_encoder_refuses_what_cannot_be_sent() -> None:
    with pytest.raises(pdu.PduEncodeError, match="not a phone number"):
        pdu.encode_submit("13800-138000", "hi")
    with pytest.raises(pdu.PduEncodeError, match="not in the GSM 7-bit alphabet"):
        pdu.encode_submit("+8613800138000", "电", encoding="gsm7")
    with pytest.raises(pdu.PduEncodeError, match="segments"):
        pdu.encode_submit("+8613800138000", "电" * 67 * 256)


def test_relative_validity_octets_follow_the_four_ranges() -> None:
    assert pdu.relative_validity(5) == 0
    assert pdu.relative_validity(720) == 143
    assert pdu.relative_validity(750) == 144
    assert pdu.relative_validity(2 * 1440) == 168
    assert pdu.relative_validity(4 * 1440) == 0xAA
    assert pdu.relative_validity(52 * 10080) == 0xF4


# ---------------------------------------------------------------- properties

numbers = st.builds(
    lambda plus, digits: ("+" if plus else "") + digits,
    st.booleans(),
    st.text("0123456789", min_size=1, max_size=20),
)
gsm_text = st.text(st.sampled_from([c for c in gsm7.BASIC if c != "\x1b"] + list(gsm7.EXTENSION)))


@settings(max_examples=300, deadline=None)
@given(numbers, st.one_of(gsm_text, st.text(max_size=400)), st.integers(0, 255), st.booleans())
def test_encode_then_decode_gives_the_text_back(
    number: str, text: str, ref: int, report: bool
) -> None:
    parts = pdu.encode_submit(number, text, concat_ref=ref, status_report=report)
    decoded = [pdu.decode_submit(p.hex) for p in parts]
    assert "".join(d.text for d in decoded) == text
    assert all(d.number == number and d.status_report == report for d in decoded)
    assert all(p.tpdu_length <= 140 + 12 + 2 for p in parts)  # header + 140 octets of user data
    if len(parts) > 1:
        assert [d.concat for d in decoded] == [(ref, len(parts), i + 1) for i in range(len(parts))]
        limit = 153 if decoded[0].encoding == "gsm7" else 67
        cost = gsm7.septet_length if decoded[0].encoding == "gsm7" else gsm7.ucs2_units
        assert all(cost(d.text) <= limit for d in decoded)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 255),
    numbers,
    st.integers(946684800 + 86400, 4102444799 - 2 * 86400),  # 2000-2099 in any zone
    st.integers(0, 86400),
    st.integers(0, 0x7F),
    st.integers(-48, 56),
    st.one_of(st.none(), numbers),
)
def test_status_report_round_trips(
    mr: int, number: str, sc_ts: int, delay: int, status: int, tz: int, smsc: str | None
) -> None:
    hex_pdu, length = pdu.encode_status_report(
        mr, number, sc_ts, sc_ts + delay, status, smsc=smsc, tz_quarters=tz
    )
    for given_length in (length, None):
        report = pdu.decode_status_report(hex_pdu, given_length)
        assert (report.mr, report.recipient, report.status) == (mr, number, status)
        assert (report.sc_ts, report.discharge_ts) == (sc_ts, sc_ts + delay)
        assert report.smsc == smsc


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=180), st.one_of(st.none(), st.integers(0, 200)))
def test_any_bytes_decode_or_raise_the_decode_error(data: bytes, length: int | None) -> None:
    for decode in (
        lambda: pdu.decode_submit(data.hex()),
        lambda: pdu.decode_status_report(data.hex(), length),
    ):
        try:
            decode()
        except pdu.PduDecodeError:
            pass


def test_garbage_hex_is_a_decode_error() -> None:
    with pytest.raises(pdu.PduDecodeError):
        pdu.decode_status_report("+CMS ERROR: 500")
    with pytest.raises(pdu.PduDecodeError):
        pdu.decode_submit("0011")


def test_codec_modules_import_nothing_that_does_io() -> None:
    # Sans-I/O (style.md 1): the codec may import only pure standard modules and itself.
    allowed = {
        "__future__",
        "binascii",
        "dataclasses",
        "cloud.notify.sms.gsm7",
        "cloud.notify.sms.fields",
    }
    for name in ("gsm7", "fields", "pdu"):
        source = Path(f"cloud/notify/sms/{name}.py").read_text(encoding="utf-8")
        found = set()
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                found.add(
                    f"{node.module}.{node.names[0].name}"
                    if node.module == "cloud.notify.sms"
                    else str(node.module)
                )
        assert found <= allowed, f"{name}.py imports {sorted(found - allowed)}"
