"""The fault-injecting meter simulator (``gridvend sim``), also usable as a library.

Three ways to run one (each serves a :class:`~edge.sim.server.SimBus` of meters of one model):

* in the caller's event loop::

      async with edge.sim.running("acrel-ddsy1352", count=4, listen=["tcp://127.0.0.1:0"],
                                  control="tcp://127.0.0.1:0") as sim:
          sim.url, sim.control_url, sim.bus          # the bus's true state is sim.bus.meters

* in a background thread (blocking callers: hil, scripts)::

      with edge.sim.SimThread("dlt645", count=2, serial="/dev/pts/7") as sim:
          with sim.control() as ctl: ctl.call("state", address=1)

* as a subprocess (``gridvend sim …``; tests of the CLI, the demo)::

      with edge.sim.SimProcess(["--model", "acrel-ddsy1352", "--count", "32",
                                "--listen", "tcp://127.0.0.1:0"]) as sim:
          sim.url, sim.control_url

Listening on port 0 picks a free port; the chosen URLs are in ``sim.info`` (and in the JSON
"ready" line the CLI prints first).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from edge.drivers import parse_url
from edge.sim.control import ControlClient, serve_control
from edge.sim.server import SimBus, close_quietly, framing_for, serve_serial, serve_tcp

__all__ = ["ControlClient", "SimBus", "SimProcess", "SimThread", "Simulator", "running"]


class Simulator:
    """A SimBus served on TCP listeners and/or a serial device, plus the control channel."""

    def __init__(
        self,
        bus: SimBus,
        listen: list[str] | tuple[str, ...] = (),
        serial: str | None = None,
        control: str | None = None,
    ) -> None:
        self.bus = bus
        self.listen = list(listen)
        self.serial = serial
        self.control = control
        self.urls: list[str] = []
        self.control_url: str | None = None
        self._closers: list[Any] = []

    @property
    def url(self) -> str:
        """The first place the meters are served (a TCP URL, or the serial path)."""
        return self.urls[0] if self.urls else str(self.serial)

    async def start(self) -> Simulator:
        if not self.listen and not self.serial:
            raise ValueError("nothing to serve: give a listen URL or a serial device")
        for url in self.listen:
            kind, host, port = parse_url(url)
            if kind == "serial":
                raise ValueError(f"listen URL {url!r} must be tcp:// or modbus-tcp://")
            server = await serve_tcp(self.bus, host, port, framing_for(self.bus, kind))
            self._closers.append(server)
            real_port = server.sockets[0].getsockname()[1]
            self.urls.append(f"{kind}://{host}:{real_port}")
        if self.serial:
            transport = await serve_serial(self.bus, self.serial, framing_for(self.bus, "serial"))
            self._closers.append(transport)
        if self.control:
            kind, host, port = parse_url(self.control)
            if kind != "tcp":
                raise ValueError(f"control URL {self.control!r} must be tcp://host:port")
            server = await serve_control(self.bus, host, port)
            self._closers.append(server)
            self.control_url = f"tcp://{host}:{server.sockets[0].getsockname()[1]}"
        return self

    @property
    def info(self) -> dict[str, Any]:
        """What the CLI prints when ready."""
        return {
            "ready": True,
            "model": self.bus.model,
            "protocol": self.bus.protocol,
            "listen": self.urls,
            "serial": self.serial,
            "control": self.control_url,
            "addresses": list(self.bus.meters),
            "baud": self.bus.baud,
            "parity": self.bus.parity,
            "wire_timing": self.bus.wire_timing,
        }

    async def close(self) -> None:
        """Stop listening and drop every connection (as a powered-off server would)."""
        for closer in reversed(self._closers):
            await close_quietly(closer)
        self._closers.clear()
        for connection in list(self.bus.connections):
            if connection.transport is not None:
                connection.transport.close()
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(
    model: str,
    count: int = 32,
    *,
    listen: list[str] | tuple[str, ...] = ("tcp://127.0.0.1:0",),
    serial: str | None = None,
    control: str | None = None,
    **bus_options: Any,
) -> AsyncIterator[Simulator]:
    """Run a simulator in the current event loop for the ``async with`` block."""
    sim = Simulator(SimBus(model, count, **bus_options), listen, serial, control)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.close()


class SimThread:
    """A simulator in a background thread with its own event loop."""

    def __init__(
        self,
        model: str,
        count: int = 32,
        *,
        listen: list[str] | tuple[str, ...] = ("tcp://127.0.0.1:0",),
        serial: str | None = None,
        control: str | None = "tcp://127.0.0.1:0",
        **bus_options: Any,
    ) -> None:
        self.bus = SimBus(model, count, **bus_options)
        self.sim = Simulator(self.bus, listen, serial, control)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return self.sim.url

    @property
    def control_url(self) -> str | None:
        return self.sim.control_url

    def start(self) -> SimThread:
        self.thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(timeout=10)
        except BaseException:
            self.stop()  # e.g. the serial device cannot be opened: do not leak the thread
            raise
        return self

    def call(self, fn: Callable[[SimBus], Any]) -> Any:
        """Run ``fn(bus)`` in the simulator's thread (its state is not thread-safe)."""

        async def run() -> Any:
            return fn(self.bus)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=10)

    def control(self) -> ControlClient:
        if not self.control_url:
            raise RuntimeError("this simulator has no control channel")
        return ControlClient(self.control_url)

    def stop(self) -> None:
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.sim.close(), self.loop).result(timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        self.loop.close()

    def __enter__(self) -> SimThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SimProcess:
    """``gridvend sim`` as a subprocess; waits for its ready line. ``args`` are CLI options;
    a control channel on a free port is added unless ``--control`` is given."""

    def __init__(self, args: list[str], timeout_s: float = 30.0) -> None:
        self.args = list(args)
        if "--control" not in self.args:
            self.args += ["--control", "tcp://127.0.0.1:0"]
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr: Any = None
        self.info: dict[str, Any] = {}

    def start(self) -> SimProcess:
        # stderr goes to a file, not a pipe: nobody drains it while the simulator runs.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.sim.cli", *self.args],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        assert self.proc.stdout is not None
        result: dict[str, Any] = {}

        def read_ready() -> None:
            assert self.proc is not None
            assert self.proc.stdout is not None
            result["line"] = self.proc.stdout.readline()

        reader = threading.Thread(target=read_ready, daemon=True)
        reader.start()
        reader.join(self.timeout_s)
        line = result.get("line", b"")
        if not line:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._stderr.seek(0)
            err = self._stderr.read().decode(errors="replace")
            self.close()
            raise RuntimeError(f"gridvend sim did not start: {err.strip() or 'no output'}")
        self.info = json.loads(line)
        return self

    @property
    def url(self) -> str:
        return str(self.info["listen"][0] if self.info.get("listen") else self.info["serial"])

    @property
    def control_url(self) -> str:
        return str(self.info["control"])

    def control(self) -> ControlClient:
        return ControlClient(self.control_url)

    def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
