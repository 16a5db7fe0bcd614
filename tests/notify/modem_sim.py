"""A simulated GSM modem on a real pseudo-terminal (``os.openpty``), for the modem channel's
tests and the notify benchmark.

The modem side is the pty master, served by a thread; the client opens ``path``, a symlink to the
slave, exactly as it would open ``/dev/ttyUSB2``. It answers the TS 27.005 commands a sender
uses (``AT``, ``ATE0/1`` with real echo until then, ``AT+CMEE``, ``AT+CMGF``, ``AT+CNMI``,
``AT+CSQ``, ``AT+CREG?``, ``AT+CPIN?``, ``AT+CNMA``, the reset command), gives ``\\r\\n> `` to
``AT+CMGS=<n>``, checks the PDU's length and decodes it, answers ``+CMGS: <mr>`` and ``OK``, and
when the PDU asks for a status report and ``AT+CNMI`` routes them, emits ``+CDS: <len>`` and the
report's PDU.

Faults, on command (``fault(...)``, ``vanish()``):

- ``hang``: swallow everything, answer nothing (a wedged module);
- ``hang_until_reset``: the same, except the reset command, which reboots it;
- ``hang_after_prompt``: give the prompt, swallow the PDU, never answer (then behave);
  with ``after=n``, only once ``n`` more segments have gone through;
- ``garble``: answer every command with noise instead;
- ``cms``: answer the next ``count`` sends with ``+CMS ERROR: <code>`` (331: no network);
- ``unregistered``: ``+CREG: 0,0`` (answers, but no network);
- ``vanish()`` closes the pty and removes the path (the USB modem fell off the bus);
  ``reappear()`` makes a new pty behind the same path.

``power_file``: a file whose appearance is the modem's power being cut and restored (what a
relay or a switchable USB hub does): the modem reboots with its faults cleared, and the file is
removed. The watchdog's power-cycle command creates it in the tests.

``baud`` makes it keep its line's pace (10 bits a byte, both directions) and ``send_ms`` is the
network's time per segment; ``busy_s`` adds up both: the modem's own time, the benchmark's
anchor.
"""

from __future__ import annotations

import heapq
import os
import random
import select
import shutil
import tempfile
import threading
import time
import tty
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cloud.notify.sms import pdu

CTRL_Z, ESC = 0x1A, 0x1B


class SimModem:
    def __init__(
        self,
        *,
        baud: int | None = None,
        send_ms: float = 0,
        report_ms: float = 20,
        report_status: int = 0x00,
        reset_command: str = "AT+CFUN=1,1",
        reboot_ms: float = 50,
        mr_start: int = 0,
        seed: int = 0,
    ) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gridvend-modem-"))
        self.path = str(self.dir / "ttyGSM0")
        self.baud = baud
        self.send_ms = send_ms
        self.report_ms = report_ms
        self.report_status = report_status
        self.reset_command = reset_command.upper()
        self.reboot_ms = reboot_ms
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._timers: list[tuple[float, int, bytes]] = []  # (due, seq, data) unsolicited
        self._out: deque[tuple[float, bytes]] = deque()  # (when it has crossed the line, data)
        self._line_free = 0.0
        self._seq = 0
        self._mr = mr_start
        self.fault_mode: str | None = None
        self.cms_code = 331
        self.cms_count = 0
        self.fault_after = 0
        self.rssi = 20
        self.busy_s = 0.0
        self.power_file = self.dir / "power-cycle"
        self.power_cycles = 0
        self.swallowed = 0
        # What was seen, for the tests to look at.
        self.commands: list[str] = []
        self.segments: list[tuple[int, pdu.Submit]] = []  # (mr, decoded SMS-SUBMIT)
        self.reports_sent: list[int] = []
        self._reboot()

    # ------------------------------------------------------------------ control

    def start(self) -> SimModem:
        self._plug()
        self._thread = threading.Thread(target=self._serve, name="sim-modem", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._unplug()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> SimModem:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fault(self, mode: str | None, *, code: int = 331, count: int = 1, after: int = 0) -> None:
        """Set a fault (see the module docstring); ``None`` clears it."""
        with self._lock:
            if mode == "cms":
                self.cms_code, self.cms_count = code, count
            else:
                self.fault_mode = mode
                self.fault_after = len(self.segments) + after

    def vanish(self) -> None:
        with self._lock:
            self._unplug()

    def reappear(self) -> None:
        with self._lock:
            self._reboot()
            self._plug()

    @property
    def present(self) -> bool:
        return self._master is not None

    def messages(self) -> list[tuple[str, str]]:
        """Whole texts that reached the modem, in order of their last segment: (number, text).
        A segment sent twice (same number, reference and sequence) counts once here; see
        ``duplicates``."""
        with self._lock:
            groups: dict[tuple[str, int, int], dict[int, str]] = {}
            out: list[tuple[str, str]] = []
            for _, seg in self.segments:
                if seg.concat is None:
                    out.append((seg.number, seg.text))
                    continue
                ref, total, seq = seg.concat
                parts = groups.setdefault((seg.number, ref, total), {})
                if seq in parts:
                    continue
                parts[seq] = seg.text
                if len(parts) == total:
                    out.append((seg.number, "".join(parts[i] for i in range(1, total + 1))))
                    del groups[(seg.number, ref, total)]
            return out

    def duplicates(self) -> int:
        with self._lock:
            seen: set[tuple[Any, ...]] = set()
            dup = 0
            for _, seg in self.segments:
                key = (seg.number, seg.text, seg.concat)
                dup += key in seen
                seen.add(key)
            return dup

    # ------------------------------------------------------------------ the pty

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line discipline: a serial line
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp = self.path + ".new"
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.path)

    def _unplug(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = None
        self._out.clear()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _reboot(self) -> None:
        self.echo = True
        self.reports_on = False
        self._line = bytearray()
        self._pdu: bytearray | None = None
        self._pdu_length = 0
        self._timers.clear()  # reports not yet sent die with a reboot (the answer before stays)

    def _wire_s(self, nbytes: int) -> float:
        return nbytes * 10 / self.baud if self.baud else 0.0

    def _write(self, data: bytes, delay_s: float = 0.0) -> None:
        """Queue ``data`` to go out when the line is free (after ``delay_s`` of the modem's own
        work): it reaches the client once its last byte would have crossed the line. A clock of
        the line, not a sleep per write, so the pace holds on a busy machine."""
        if self._master is None:
            return
        wire = self._wire_s(len(data))
        start = max(time.monotonic(), self._line_free) + delay_s
        self._line_free = start + wire
        self.busy_s += wire + delay_s
        self._out.append((self._line_free, data))

    def _later(self, delay_ms: float, data: bytes) -> None:
        """Send ``data`` in ``delay_ms`` (an unsolicited report), when the line is free then."""
        self._seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay_ms / 1000, self._seq, data))

    def _flush_due(self, now: float) -> float:
        """Emit due timers and write due output; returns how long until the next one is due."""
        while self._timers and self._timers[0][0] <= now:
            self._write(heapq.heappop(self._timers)[2])
        while self._out and self._out[0][0] <= now and self._master is not None:
            data = self._out.popleft()[1]
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self._master, view)
                except BlockingIOError:
                    time.sleep(0.0005)
                    continue
                except OSError:
                    break
                view = view[n:]
        nexts = [t for t, *_ in self._timers[:1]] + [t for t, _ in list(self._out)[:1]]
        return max(0.0, min(nexts) - now) if nexts else 0.005

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if self.power_file.exists():
                    self.power_file.unlink()
                    self.power_cycles += 1
                    self.fault_mode, self.cms_count = None, 0
                    self._reboot()
                master = self._master
                wait = min(self._flush_due(time.monotonic()), 0.005)
            if master is None:
                time.sleep(0.01)
                continue
            try:
                ready, _, _ = select.select([master], [], [], wait)
            except (OSError, ValueError):
                continue
            if not ready:
                continue
            with self._lock:
                if self._master != master:
                    continue
                try:
                    data = os.read(master, 4096)
                except (BlockingIOError, OSError):
                    continue
                # The command took its wire time to arrive: no answer starts before that.
                wire = self._wire_s(len(data))
                self._line_free = max(time.monotonic(), self._line_free) + wire
                self.busy_s += wire
                for byte in data:
                    self._byte(byte)

    # ------------------------------------------------------------------ the modem

    def _byte(self, b: int) -> None:
        if self._pdu is not None:
            if b == CTRL_Z:
                self._submit(bytes(self._pdu).decode("ascii", "replace"))
                self._pdu = None
            elif b == ESC:
                self._pdu = None
                self._reply(b"\r\nOK\r\n")
            else:
                if self.echo:
                    self._write(bytes((b,)))
                self._pdu.append(b)
            return
        if self.echo and self.fault_mode not in ("hang", "hang_until_reset"):
            self._write(bytes((b,)))
        if b == 0x0D:
            line = bytes(self._line).decode("ascii", "replace").strip()
            self._line.clear()
            if line:
                self._command(line)
        elif b == ESC:
            self._line.clear()
        elif b != 0x0A:
            self._line.append(b)

    def _reply(self, data: bytes, delay_s: float = 0.0) -> None:
        if self.fault_mode == "garble":
            noise = bytes(self._rng.choice(b"#$%&*!?~^ \x00\xff\xfe\x80") for _ in range(12))
            data = b"\r\n" + noise + b"\r\n"
        self._write(data, delay_s)

    def _ok(self, *lines: str) -> None:
        body = b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines)
        self._reply(body + b"\r\nOK\r\n")

    def _command(self, line: str) -> None:
        self.commands.append(line)
        cmd = line.upper()
        if self.fault_mode == "hang":
            return
        if self.fault_mode == "hang_until_reset":
            if cmd != self.reset_command:
                return
            self.fault_mode = None
        handler = self._handler(cmd)
        if handler is None:
            self._reply(b"\r\nERROR\r\n")
        else:
            handler(cmd)

    def _handler(self, cmd: str) -> Callable[[str], None] | None:
        if cmd == self.reset_command:
            return self._reset
        if cmd.startswith("AT+CMGS="):
            return self._cmgs
        table: dict[str, Callable[[str], None]] = {
            "AT": lambda c: self._ok(),
            "ATE0": lambda c: self._echo(False),
            "ATE1": lambda c: self._echo(True),
            "AT+CSQ": lambda c: self._ok(f"+CSQ: {self.rssi},99"),
            "AT+CREG?": lambda c: self._ok(
                "+CREG: 0,0" if self.fault_mode == "unregistered" else "+CREG: 0,1"
            ),
            "AT+CPIN?": lambda c: self._ok("+CPIN: READY"),
            "AT+CNMA": lambda c: self._ok(),
        }
        if cmd in table:
            return table[cmd]
        for prefix in ("AT+CMEE=", "AT+CMGF=", "AT+CSCA="):
            if cmd.startswith(prefix):
                return lambda c: self._ok()
        if cmd.startswith("AT+CNMI="):
            return self._cnmi
        return None

    def _echo(self, on: bool) -> None:
        self.echo = on
        self._ok()

    def _cnmi(self, cmd: str) -> None:
        fields = cmd.split("=", 1)[1].split(",")
        mode = fields[0] if fields else ""
        ds = fields[3] if len(fields) > 3 else "0"
        self.reports_on = mode in ("1", "2", "3") and ds == "1"
        self._ok()

    def _reset(self, cmd: str) -> None:
        self._reply(b"\r\nOK\r\n")
        self._reboot()
        self._later(self.reboot_ms, b"\r\nRDY\r\n")

    def _cmgs(self, cmd: str) -> None:
        tail = cmd.split("=", 1)[1]
        if not tail.isdigit():
            self._reply(b"\r\n+CMS ERROR: 304\r\n")
            return
        self._pdu_length = int(tail)
        self._pdu = bytearray()
        self._reply(b"\r\n> ")

    def _submit(self, hex_pdu: str) -> None:
        if self.fault_mode == "hang_after_prompt" and len(self.segments) >= self.fault_after:
            self.fault_mode = None  # the next command finds a working modem
            self.swallowed += 1
            return
        try:
            smsc_octets = int(hex_pdu[:2], 16) + 1
            if len(hex_pdu) // 2 - smsc_octets != self._pdu_length:
                raise pdu.PduDecodeError("length does not match AT+CMGS")
            seg = pdu.decode_submit(hex_pdu)
        except (ValueError, pdu.PduDecodeError):
            self._reply(b"\r\n+CMS ERROR: 304\r\n")
            return
        if self.cms_count > 0:
            self.cms_count -= 1
            self._reply(f"\r\n+CMS ERROR: {self.cms_code}\r\n".encode())
            return
        mr = self._mr
        self._mr = (self._mr + 1) % 256
        self.segments.append((mr, seg))
        # The network's time for the segment, then the answer.
        self._reply(f"\r\n+CMGS: {mr}\r\n\r\nOK\r\n".encode(), self.send_ms / 1000)
        if seg.status_report and self.reports_on:
            now = int(time.time())
            hex_report, length = pdu.encode_status_report(
                mr, seg.number, now, now, self.report_status
            )
            self.reports_sent.append(mr)
            self._later(self.report_ms, f"\r\n+CDS: {length}\r\n{hex_report}\r\n".encode())


def main() -> None:
    """``python -m tests.notify.modem_sim [--baud B] [--send-ms S]``: a simulated modem in its own
    process (as a real one is its own hardware): prints ``{"path": …}``, then answers each
    ``stats`` line on stdin with ``{"messages", "duplicates", "segments", "busy_s"}``; ends at
    EOF."""
    import argparse  # noqa: PLC0415 (only when run as a program)
    import json  # noqa: PLC0415
    import sys  # noqa: PLC0415

    parser = argparse.ArgumentParser()
    parser.add_argument("--baud", type=int, default=None)
    parser.add_argument("--send-ms", type=float, default=0.0)
    args = parser.parse_args()
    with SimModem(baud=args.baud, send_ms=args.send_ms) as sim:
        print(json.dumps({"path": sim.path}), flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                stats = {"messages": len(sim.messages()), "duplicates": sim.duplicates(),
                         "segments": len(sim.segments), "busy_s": sim.busy_s}  # fmt: skip
                print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
