"""A GSM modem (短信猫) on a serial port, in PDU mode, as a channel.

One object owns the port: a reader task feeds every byte to the sans-I/O ``AtParser``; one
command runs at a time (``_lock``), and every command has a timeout. A send is ``AT+CMGS=<n>``,
the ``> `` prompt, the PDU and Ctrl-Z, then ``+CMGS: <mr>`` and ``OK`` (TS 27.005 §3.5.1): the
reference ``mr`` is what the status report (``+CDS``, enabled by ``AT+CNMI=2,1,0,1,0``) will
carry. Chinese goes as UCS2, long texts as concatenated segments (``cloud.notify.sms.pdu``).

What can go wrong, and what the caller sees:

- no prompt within ``prompt_timeout_ms``: ESC aborts the command; ``RetryLater``, not sent;
- no answer after the PDU within ``send_timeout_ms``, or the port vanishing then: ``RetryLater``
  with ``uncertain`` (the modem never gave a reference, so the message is sent again);
- ``+CMS ERROR: n``: ``RetryLater``, ``Rejected`` or ``ChannelDown`` as ``at.CMS_ERRORS`` says;
- the watchdog (``cloud.notify.channels.watchdog``) recovering the modem: ``RetryLater``; the
  watchdog gave up (the modem is dead): ``ChannelDown``, so the outbox falls back at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import serial
import serial_asyncio

from cloud.notify.channels.base import (
    DEGRADED,
    DOWN,
    OK,
    RECOVERING,
    REQUIRED,
    Channel,
    DeliveryReport,
    Message,
    Progress,
    Receipt,
    options,
)
from cloud.notify.channels.watchdog import Watchdog
from cloud.notify.errors import ChannelDown, ChannelError, Rejected, RetryLater
from cloud.notify.sms import at, pdu

Opener = Callable[[str, int], Awaitable[tuple[asyncio.StreamReader, asyncio.StreamWriter]]]
StateCallback = Callable[[str, str, str], Any]

_LOST = object()  # put in a waiting command's queue when the port goes away


class AtTimeout(Exception):
    """A command got no final result in time."""


class AtFailed(Exception):
    """A command ended in an error result."""

    def __init__(self, result: at.Final, lines: list[str]) -> None:
        super().__init__(result.line)
        self.result = result
        self.lines = lines


class LinkLost(Exception):
    """The port is closed or went away."""


async def open_serial(port: str, baud: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    try:
        return await serial_asyncio.open_serial_connection(url=port, baudrate=baud)
    except serial.SerialException as exc:
        raise OSError(str(exc)) from exc


class GsmModem(Channel):
    kind = "modem"
    OPTIONS: ClassVar[dict[str, tuple[type | tuple[type, ...], Any]]] = {
        "port": (str, REQUIRED),
        "baud": (int, 115200),
        "open_timeout_ms": (int, 3000),
        "command_timeout_ms": (int, 3000),
        "prompt_timeout_ms": (int, 5000),
        "send_timeout_ms": (int, 60000),
        "settle_ms": (int, 150),  # quiet time after a timeout or abort, so late answers fall away
        "smsc": (str, ""),  # "" = the SIM's own service centre
        "validity_minutes": (int, 1440),  # 0 = no validity period in the PDU
        "cnmi": (str, "AT+CNMI=2,1,0,1,0"),  # status reports straight to us as +CDS
        "ack_reports": (bool, False),  # AT+CNMA after each +CDS (needed when AT+CSMS=1)
        "init": (list, []),  # extra commands after the standard ones
        # the watchdog's settings (cloud.notify.channels.watchdog)
        "health_interval_s": ((int, float), 30),
        "health_failures": (int, 2),
        "reset_command": (str, "AT+CFUN=1,1"),
        "reset_wait_s": ((int, float), 10),
        "power_cycle": (list, []),  # argv of a command that cuts the modem's power, e.g. uhubctl
        "power_cycle_wait_s": ((int, float), 20),
        "dead_retry_s": ((int, float), 60),
    }

    def __init__(
        self,
        name: str = "modem",
        *,
        opener: Opener = open_serial,
        on_state: StateCallback | None = None,
        clock: Callable[[], float] = time.time,
        **settings: Any,
    ) -> None:
        super().__init__(name)
        self.settings = options(self.OPTIONS, settings, f"channels.{name}")
        self._opener = opener
        self._on_state = on_state
        self._clock = clock
        self._parser = at.AtParser()
        self._lock = asyncio.Lock()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._rx_task: asyncio.Task[None] | None = None
        self._waiting: asyncio.Queue[object] | None = None
        self._concat_ref = random.randrange(256)
        self._dirty = False  # a command timed out: its answer may still come
        self.state = RECOVERING
        self.reason = "not started"
        self.reports_enabled = False
        self.signal: tuple[int, int] | None = None
        self.registered: bool | None = None
        self.last_ok_ts: float | None = None
        self.counters = dict.fromkeys(
            ("sent", "segments", "send_failures", "timeouts", "cms_errors", "reports",
             "bad_reports", "unsolicited", "stray_lines", "link_losses", "opens", "open_failures"),
            0,
        )  # fmt: skip
        self.watchdog = Watchdog(self)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open and initialise the modem; if that fails the watchdog keeps trying (sends meanwhile
        raise ``RetryLater``, then ``ChannelDown`` once it gives up)."""
        try:
            async with self._lock:
                await self.open_and_init()
            self.set_state(OK, "initialised")
        except (OSError, AtTimeout, AtFailed, LinkLost) as exc:
            self.set_state(RECOVERING, f"start failed: {_describe(exc)}")
        self.watchdog.start()

    async def close(self) -> None:
        await self.watchdog.stop()
        await self.close_port()

    def set_state(self, state: str, reason: str) -> None:
        old, self.state, self.reason = self.state, state, reason
        if state in (OK, DEGRADED):
            self.last_ok_ts = self._clock()
        if old != state and self._on_state is not None:
            self._on_state(old, state, reason)

    def health(self) -> dict[str, Any]:
        return {
            "channel": self.name,
            "kind": self.kind,
            "state": self.state,
            "reason": self.reason,
            "dead": self.state == DOWN,
            "port": self.settings["port"],
            "signal_rssi": self.signal[0] if self.signal else None,
            "registered": self.registered,
            "reports": self.reports_enabled,
            "last_ok_ts": int(self.last_ok_ts) if self.last_ok_ts else None,
            "counters": dict(self.counters),
            "watchdog": self.watchdog.health(),
        }

    # ------------------------------------------------------------------ the port

    @property
    def link_up(self) -> bool:
        return self._writer is not None

    async def open_port(self) -> None:
        await self.close_port()
        try:
            async with asyncio.timeout(self.settings["open_timeout_ms"] / 1000):
                reader, writer = await self._opener(self.settings["port"], self.settings["baud"])
        except (OSError, TimeoutError) as exc:
            self.counters["open_failures"] += 1
            raise OSError(f"cannot open {self.settings['port']}: {_describe(exc)}") from exc
        self.counters["opens"] += 1
        self._parser.reset()
        self._reader, self._writer = reader, writer
        self._rx_task = asyncio.create_task(self._read_loop(reader, writer))

    async def close_port(self) -> None:
        writer, task = self._writer, self._rx_task
        self._writer = self._reader = None
        self._rx_task = None
        if task is not None:
            task.cancel()
            # asyncio.wait, not await task: a cancellation of *this* coroutine must go through.
            await asyncio.wait({task})
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass

    async def open_and_init(self) -> None:
        """Open the port and run the init sequence. Caller holds ``_lock``."""
        await self.open_port()
        timeout = self.settings["command_timeout_ms"]
        # ESC ends a half-sent AT+CMGS the modem may still wait in; then AT until it answers.
        self._write(at.ESC + b"\r")
        self._dirty = True
        for attempt in range(3):
            try:
                await self.command("AT", min(timeout, 1000))
                break
            except (AtTimeout, AtFailed):
                if attempt == 2:
                    raise
        for cmd in ("ATE0", "AT+CMEE=1", "AT+CMGF=0", *self.settings["init"]):
            await self.command(str(cmd), timeout)
        self.reports_enabled = False
        if self.settings["cnmi"]:
            try:
                await self.command(self.settings["cnmi"], timeout)
                self.reports_enabled = True
            except AtFailed:
                pass  # no delivery reports from this modem: messages stay "sent"

    def _write(self, data: bytes) -> None:
        if self._writer is None:
            raise LinkLost("the port is closed")
        self._writer.write(data)

    async def _read_loop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                for event in self._parser.feed(data):
                    self._dispatch(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the port went away (EIO from a vanished pty, USB unplugged)
            self.reason = f"port error: {_describe(exc)}"
        if self._writer is writer:  # still the current port: it was lost, not closed by us
            self.counters["link_losses"] += 1
            self._writer = self._reader = None
            if self._waiting is not None:
                self._waiting.put_nowait(_LOST)
            self.watchdog.kick()

    def _dispatch(self, event: at.Event) -> None:
        if isinstance(event, at.Report):
            if event.kind == "+CDS":
                self._status_report(event)
            else:
                self.counters["unsolicited"] += 1
        elif isinstance(event, at.Line) and at.is_unsolicited(event.text):
            self.counters["unsolicited"] += 1
        elif self._waiting is not None:
            self._waiting.put_nowait(event)
        else:
            self.counters["stray_lines"] += 1

    def _status_report(self, event: at.Report) -> None:
        try:
            report = pdu.decode_status_report(event.pdu, event.length)
        except pdu.PduDecodeError:
            self.counters["bad_reports"] += 1
            return
        self.counters["reports"] += 1
        if self.settings["ack_reports"]:
            asyncio.get_running_loop().create_task(self._ack_report())
        self._report(
            DeliveryReport(
                self.name,
                str(report.mr),
                report.outcome,
                f"0x{report.status:02X}",
                report.discharge_ts,
                report.recipient,
            )
        )

    async def _ack_report(self) -> None:
        async with self._lock:
            try:
                await self.command("AT+CNMA", self.settings["command_timeout_ms"])
            except (AtTimeout, AtFailed, LinkLost):
                pass

    # ------------------------------------------------------------------ commands

    async def command(self, cmd: str, timeout_ms: int) -> list[str]:
        """Send one command and collect its information lines up to ``OK``. Caller holds
        ``_lock``. Raises ``AtTimeout``, ``AtFailed`` or ``LinkLost``."""
        await self._settle()
        queue: asyncio.Queue[object] = asyncio.Queue()
        self._waiting = queue
        try:
            self._write(cmd.encode("ascii") + b"\r")
            return await self._collect(queue, timeout_ms, echo=cmd)
        finally:
            self._waiting = None

    async def _collect(self, queue: asyncio.Queue[object], timeout_ms: int, echo: str) -> list[str]:
        deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        lines: list[str] = []
        while True:
            item = await self._next(queue, deadline)
            if not isinstance(item, at.Line) or item.text == echo:
                continue  # a stray prompt, or the modem echoing the command back
            result = at.final(item.text)
            if result is None:
                lines.append(item.text)
            elif result.kind == "ok":
                return lines
            else:
                raise AtFailed(result, lines)

    async def _settle(self) -> None:
        """After a timeout or an abort, wait a quiet moment with no command waiting, so an answer
        that comes late is dropped instead of being taken for the next command's."""
        if self._dirty:
            self._dirty = False
            await asyncio.sleep(self.settings["settle_ms"] / 1000)

    async def _next(self, queue: asyncio.Queue[object], deadline: float) -> object:
        left = deadline - asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(max(left, 0)):
                item = await queue.get()
        except TimeoutError:
            self.counters["timeouts"] += 1
            self._dirty = True
            raise AtTimeout("no answer in time") from None
        if item is _LOST:
            raise LinkLost("the port went away")
        return item

    # ------------------------------------------------------------------ sending

    async def send(self, message: Message, progress: Progress | None = None) -> Receipt:
        ref = message.concat_ref
        if ref is None:
            self._concat_ref = (self._concat_ref + 1) % 256
            ref = self._concat_ref
        vp = self.settings["validity_minutes"]
        try:
            parts = pdu.encode_submit(
                message.to,
                message.text,
                smsc=self.settings["smsc"] or None,
                validity_vp=pdu.relative_validity(vp) if vp else None,
                concat_ref=ref,
            )
        except pdu.PduEncodeError as exc:
            raise Rejected(str(exc), code="encode") from None
        done = {int(k): str(v) for k, v in message.done_parts.items()}
        for part in parts:
            if part.seq in done:
                continue
            try:
                done[part.seq] = str(await self._submit(part))
            except ChannelError as exc:
                self.counters["send_failures"] += 1
                exc.partial, exc.concat_ref = dict(done), ref
                raise
            if progress is not None and len(done) < len(parts):
                await progress(part.seq, done[part.seq], ref)
        self.counters["sent"] += 1
        refs = tuple(done[seq] for seq in sorted(done))
        return Receipt(",".join(refs), len(parts), False, refs, ref)

    def _usable(self) -> None:
        if self.state == DOWN:
            raise ChannelDown(f"modem {self.name} is dead: {self.reason}", code="dead")
        if self.state == RECOVERING or not self.link_up:
            raise RetryLater(f"modem {self.name} is recovering: {self.reason}", code="recovering")

    async def _submit(self, part: pdu.SubmitPdu) -> int:
        async with self._lock:
            self._usable()
            await self._settle()
            queue: asyncio.Queue[object] = asyncio.Queue()
            self._waiting = queue
            loop = asyncio.get_running_loop()
            written = False
            try:
                self._parser.expect_prompt = True
                self._write(f"AT+CMGS={part.tpdu_length}\r".encode())
                deadline = loop.time() + self.settings["prompt_timeout_ms"] / 1000
                while True:
                    item = await self._next(queue, deadline)
                    if isinstance(item, at.Prompt):
                        break
                    if isinstance(item, at.Line) and (result := at.final(item.text)):
                        raise AtFailed(result, [])
                self._write(part.hex.encode("ascii") + at.CTRL_Z)
                written = True
                lines = await self._collect(queue, self.settings["send_timeout_ms"], part.hex)
            except AtTimeout:
                self._parser.expect_prompt = False
                if not written:
                    self._abort()
                self.watchdog.kick()
                what = "no reference after the PDU" if written else "no > prompt"
                raise RetryLater(
                    f"modem {self.name}: {what}", code="timeout", uncertain=written
                ) from None
            except LinkLost:
                raise RetryLater(
                    f"modem {self.name}: the port went away", code="link", uncertain=written
                ) from None
            except AtFailed as exc:
                self._parser.expect_prompt = False
                raise self._failure(exc.result) from None
            finally:
                self._waiting = None
        mr = at.message_reference(lines)
        if mr is None:
            raise RetryLater(f"modem {self.name}: OK without +CMGS", code="no_mr", uncertain=True)
        self.counters["segments"] += 1
        return mr

    def _abort(self) -> None:
        self._dirty = True
        try:
            self._write(at.ESC)
        except LinkLost:
            pass

    def _failure(self, result: at.Final) -> ChannelError:
        if result.kind != "cms":
            return RetryLater(f"modem {self.name}: {result.line}", code=result.line)
        self.counters["cms_errors"] += 1
        action, meaning = at.cms_action(result.code)
        text = f"modem {self.name}: +CMS ERROR: {result.code} ({meaning})"
        code = f"CMS {result.code}"
        if action == at.REJECT:
            return Rejected(text, code=code)
        if action == at.FAULT:
            self.watchdog.kick()
            return ChannelDown(text, code=code)
        return RetryLater(text, code=code)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
