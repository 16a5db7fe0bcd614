"""The AT dialogue of a GSM modem (3GPP TS 27.007 / 27.005), without I/O.

Theory of operation
-------------------
``AtParser.feed(bytes)`` cuts the modem's output into events:

- ``Line(text)``: one response line (CR/LF stripped, empty lines dropped);
- ``Prompt()``: the ``> `` an ``AT+CMGS=<n>`` command waits for; recognised only while
  ``expect_prompt`` is set, because a prompt has no line end;
- ``Report(header, pdu)``: an unsolicited message whose PDU follows on the next line: ``+CDS``
  (status report), ``+CMT`` (incoming SMS), ``+CBM`` (cell broadcast).

The caller runs one command at a time and asks ``final(line)`` whether a line ends it (``OK``,
``ERROR``, ``+CME ERROR: n``, ``+CMS ERROR: n``); other lines are the command's information
lines, unless ``is_unsolicited(line)`` says the modem volunteered them. Garbage comes out as
lines too (bytes that are not UTF-8 are replaced): whoever waits for a final result simply does
not get one and times out. Any input gives events; nothing here raises on what the modem sends.

``CMS_ERRORS`` maps ``+CMS ERROR`` codes (TS 27.005 §3.2.5; 1-127 are network causes, TS 24.011
§E.2) to what a sender should do: ``retry`` later, ``reject`` the message (it cannot go through
this modem), or ``fault`` (the modem is out of order: fall back and let the watchdog look).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CTRL_Z = b"\x1a"
ESC = b"\x1b"
MAX_LINE = 4096  # a line longer than this is garbage: it is emitted in pieces


@dataclass(frozen=True)
class Line:
    text: str


@dataclass(frozen=True)
class Prompt:
    pass


@dataclass(frozen=True)
class Report:
    header: str
    pdu: str

    @property
    def kind(self) -> str:
        return self.header.split(":", 1)[0]

    @property
    def length(self) -> int | None:
        """The ``<length>`` of ``+CDS: <length>`` (TPDU octets), when it is a number."""
        tail = self.header.split(",")[-1].split(":", 1)[-1].strip()
        return int(tail) if tail.isdigit() else None


Event = Line | Prompt | Report

# Unsolicited messages with a PDU on the next line (PDU mode): "+CDS: 25", "+CMT: ,25".
_PDU_FOLLOWS = re.compile(r"^\+(CDS|CMT|CBM): *(\"[^\"]*\")?,? *\d+$")
# Single-line unsolicited messages a modem sends between commands (vendor ones included).
_UNSOLICITED = ("+CMTI:", "+CDSI:", "+CBMI:", "RING", "+CRING:", "^RSSI:", "^MODE:", "^BOOT:",
                "^SRVST:", "^SIMST:", "+CIEV:", "+PBREADY", "RDY", "^SYSSTART", "+QIND:",
                "+CGEV:", "+CUSD:")  # fmt: skip


class AtParser:
    def __init__(self) -> None:
        self._buf = bytearray()
        self._pending_header: str | None = None
        self.expect_prompt = False

    def feed(self, data: bytes) -> list[Event]:
        self._buf += data
        events: list[Event] = []
        while True:
            if self.expect_prompt:
                start = 0
                while start < len(self._buf) and self._buf[start] in b"\r\n":
                    start += 1
                if self._buf[start : start + 1] == b">":
                    # "> " (or a bare ">"): the prompt ends the line by itself.
                    end = start + 1
                    if self._buf[end : end + 1] == b" ":
                        end += 1
                    del self._buf[:end]
                    self.expect_prompt = False
                    events.append(Prompt())
                    continue
            cut = _line_end(self._buf)
            if cut < 0:
                if len(self._buf) > MAX_LINE:
                    cut = MAX_LINE
                else:
                    return events
            raw = bytes(self._buf[:cut])
            del self._buf[: cut + 1]
            text = raw.decode("utf-8", errors="replace").strip("\r\n \x00")
            if not text:
                continue
            if self._pending_header is not None:
                header, self._pending_header = self._pending_header, None
                events.append(Report(header, text))
                continue
            if _PDU_FOLLOWS.match(text):
                self._pending_header = text
                continue
            events.append(Line(text))

    def reset(self) -> None:
        """Forget partial input (after the port was reopened)."""
        self._buf.clear()
        self._pending_header = None
        self.expect_prompt = False


def _line_end(buf: bytearray) -> int:
    for i, b in enumerate(buf):
        if b in (0x0D, 0x0A):
            return i
    return -1


@dataclass(frozen=True)
class Final:
    """The final result code that ends a command: ``kind`` is ``ok``, ``error``, ``cme`` or
    ``cms``; ``code`` the number of a ``+CME``/``+CMS ERROR`` (None when not numeric)."""

    kind: str
    code: int | None
    line: str


_ERRORS = ("ERROR", "NO CARRIER", "COMMAND NOT SUPPORT", "TOO MANY PARAMETERS")


def final(line: str) -> Final | None:
    if line == "OK":
        return Final("ok", None, line)
    if line in _ERRORS:
        return Final("error", None, line)
    for prefix, kind in (("+CME ERROR:", "cme"), ("+CMS ERROR:", "cms")):
        if line.startswith(prefix):
            tail = line[len(prefix) :].strip()
            return Final(kind, int(tail) if tail.isdigit() else None, line)
    return None


def is_unsolicited(line: str) -> bool:
    return line.startswith(_UNSOLICITED)


def field_values(lines: list[str], prefix: str) -> list[str] | None:
    """The comma-separated values of the first ``prefix`` line (``+CSQ: 20,99`` → ["20", "99"])."""
    for line in lines:
        if line.startswith(prefix):
            return [v.strip().strip('"') for v in line[len(prefix) :].split(",")]
    return None


def message_reference(lines: list[str]) -> int | None:
    """The ``<mr>`` of ``+CMGS: <mr>``, or None when no such line came."""
    values = field_values(lines, "+CMGS:")
    if values and values[0].isdigit() and int(values[0]) <= 255:
        return int(values[0])
    return None


def signal(lines: list[str]) -> tuple[int, int] | None:
    """``(rssi, ber)`` of ``+CSQ``; rssi 0-31 (99 = unknown)."""
    values = field_values(lines, "+CSQ:")
    if values and len(values) >= 2 and values[0].isdigit() and values[1].isdigit():
        return int(values[0]), int(values[1])
    return None


def registration(lines: list[str]) -> int | None:
    """``<stat>`` of ``+CREG: <n>,<stat>``: 1 home, 5 roaming (registered); 0, 2, 3, 4 not."""
    values = field_values(lines, "+CREG:")
    if not values:
        return None
    stat = values[1] if len(values) >= 2 else values[0]
    return int(stat) if stat.isdigit() else None


RETRY, REJECT, FAULT = "retry", "reject", "fault"

# +CMS ERROR code -> (what to do, meaning). Unlisted codes: network causes 1-127 are rejections
# unless listed as temporary; 300-511 are modem faults; 512+ (vendor) are retried.
CMS_ERRORS: dict[int, tuple[str, str]] = {
    1: (REJECT, "unassigned (unallocated) number"),
    8: (REJECT, "operator determined barring"),
    10: (REJECT, "call barred"),
    21: (REJECT, "short message transfer rejected"),
    22: (RETRY, "memory capacity exceeded"),
    27: (RETRY, "destination out of order"),
    28: (REJECT, "unidentified subscriber"),
    29: (REJECT, "facility rejected"),
    30: (REJECT, "unknown subscriber"),
    38: (RETRY, "network out of order"),
    41: (RETRY, "temporary failure"),
    42: (RETRY, "congestion"),
    47: (RETRY, "resources unavailable"),
    50: (REJECT, "requested facility not subscribed"),
    96: (REJECT, "invalid mandatory information"),
    300: (FAULT, "ME failure"),
    301: (FAULT, "SMS service of ME reserved"),
    302: (FAULT, "operation not allowed"),
    303: (FAULT, "operation not supported"),
    304: (REJECT, "invalid PDU mode parameter"),
    305: (REJECT, "invalid text mode parameter"),
    310: (FAULT, "SIM not inserted"),
    311: (FAULT, "SIM PIN required"),
    312: (FAULT, "PH-SIM PIN required"),
    313: (FAULT, "SIM failure"),
    314: (RETRY, "SIM busy"),
    315: (FAULT, "SIM wrong"),
    316: (FAULT, "SIM PUK required"),
    320: (RETRY, "memory failure"),
    330: (FAULT, "SMSC address unknown"),
    331: (RETRY, "no network service"),
    332: (RETRY, "network timeout"),
    340: (RETRY, "no +CNMA acknowledgement expected"),
    500: (RETRY, "unknown error"),
    512: (RETRY, "vendor: modem busy"),
    515: (RETRY, "vendor: please wait, initialisation or command in progress"),
}


def cms_action(code: int | None) -> tuple[str, str]:
    """What to do about ``+CMS ERROR: code`` and what it means."""
    if code is None:
        return RETRY, "unnumbered error"
    if code in CMS_ERRORS:
        return CMS_ERRORS[code]
    if 1 <= code <= 127:
        return REJECT, f"network cause {code}"
    if 300 <= code <= 511:
        return FAULT, f"modem error {code}"
    return RETRY, f"error {code}"
