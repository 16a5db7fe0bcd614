"""The sans-I/O AT parser: whole, byte by byte, with junk; and what never makes it raise."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.notify.sms import at

SESSION = (
    b"AT\r\r\nOK\r\n"  # echo, then the answer
    b"\r\n+CSQ: 21,99\r\n\r\nOK\r\n"
    b"\r\n+CDS: 25\r\n0006D60B911326880736F4111011719551401110117195714000\r\n"
    b'\r\n+CMTI: "SM",3\r\n'
    b"\r\n+CMS ERROR: 331\r\n"
)
EXPECTED = [
    at.Line("AT"),
    at.Line("OK"),
    at.Line("+CSQ: 21,99"),
    at.Line("OK"),
    at.Report("+CDS: 25", "0006D60B911326880736F4111011719551401110117195714000"),
    at.Line('+CMTI: "SM",3'),
    at.Line("+CMS ERROR: 331"),
]


def test_a_session_fed_whole_and_byte_by_byte_gives_the_same_events() -> None:
    assert at.AtParser().feed(SESSION) == EXPECTED
    parser = at.AtParser()
    events = []
    for i in range(len(SESSION)):
        events += parser.feed(SESSION[i : i + 1])
    assert events == EXPECTED


def test_the_prompt_is_seen_only_when_expected_and_needs_no_line_end() -> None:
    parser = at.AtParser()
    assert parser.feed(b"\r\n> ") == []  # not expected: waits for a line end
    parser = at.AtParser()
    parser.expect_prompt = True
    assert parser.feed(b"\r\n> ") == [at.Prompt()]
    assert not parser.expect_prompt
    assert parser.feed(b"\r\n+CMGS: 7\r\n\r\nOK\r\n") == [at.Line("+CMGS: 7"), at.Line("OK")]


def test_final_results_and_what_they_carry() -> None:
    assert at.final("OK") == at.Final("ok", None, "OK")
    assert at.final("ERROR").kind == "error"
    assert at.final("+CMS ERROR: 331") == at.Final("cms", 331, "+CMS ERROR: 331")
    assert at.final("+CME ERROR: SIM busy") == at.Final("cme", None, "+CME ERROR: SIM busy")
    assert at.final("+CSQ: 20,99") is None
    assert at.message_reference(["+CMGS: 12"]) == 12
    assert at.message_reference(["+CMGS: 300"]) is None
    assert at.signal(["+CSQ: 20,99"]) == (20, 99)
    assert at.registration(["+CREG: 0,5"]) == 5
    assert at.registration(["+CREG: 1"]) == 1


def test_cms_codes_are_classified_with_their_meaning() -> None:
    assert at.cms_action(331) == (at.RETRY, "no network service")
    assert at.cms_action(310)[0] == at.FAULT
    assert at.cms_action(1)[0] == at.REJECT
    assert at.cms_action(99)[0] == at.REJECT  # unlisted network cause
    assert at.cms_action(400)[0] == at.FAULT  # unlisted modem error
    assert at.cms_action(None)[0] == at.RETRY


def test_junk_and_overlong_lines_come_out_as_lines_not_errors() -> None:
    parser = at.AtParser()
    events = parser.feed(b"\xff\xfe\x00garbage\r\n" + b"x" * 5000)
    assert events[0] == at.Line("\ufffd\ufffd\x00garbage")
    assert any(isinstance(e, at.Line) and len(e.text) == at.MAX_LINE for e in events)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=20), st.booleans())
def test_any_input_gives_events_and_never_raises(chunks: list[bytes], prompt: bool) -> None:
    parser = at.AtParser()
    parser.expect_prompt = prompt
    for chunk in chunks:
        for event in parser.feed(chunk):
            assert isinstance(event, at.Line | at.Prompt | at.Report)
            if isinstance(event, at.Line):
                at.final(event.text)
                at.is_unsolicited(event.text)
