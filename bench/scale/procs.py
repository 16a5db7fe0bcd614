"""The processes the scale benchmark starts and kills: ``gridvend cloud bridge`` and
``gridvend cloud serve`` as child processes on the bench's database, and the load processes
(``bench.scale.load``) behind a pipe each."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.scale import load

GRIDVEND = str(Path(sys.executable).with_name("gridvend"))


class BridgeProcess:
    """One ``gridvend cloud bridge`` child; its JSON log lines are read for readiness."""

    def __init__(self, name: str, db_url: str, broker_urls: list[str], extra: list[str]) -> None:
        self.name = name
        self.db_url = db_url
        self.broker_urls = broker_urls
        self.extra = extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.connected = threading.Event()
        self.events: dict[str, int] = {}
        self.errors: list[str] = []
        self.starts = 0

    def start(self) -> None:
        self.connected.clear()
        self.starts += 1
        self.proc = subprocess.Popen(
            [
                GRIDVEND,
                "cloud",
                "bridge",
                "--database",
                self.db_url,
                "--broker",
                ",".join(self.broker_urls),
                "--client-id",
                self.name,
                "--no-north",
                "--log-level",
                "info",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in proc.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                self.errors.append(raw.decode(errors="replace")[:500])
                continue
            name = str(line.get("event", ""))
            self.events[name] = self.events.get(name, 0) + 1
            if name == "broker_connected":
                self.connected.set()
            if line.get("level") in ("ERROR", "CRITICAL") and len(self.errors) < 50:
                self.errors.append(json.dumps(line)[:1000])

    def wait_connected(self, timeout_s: float = 60.0) -> None:
        if not self.connected.wait(timeout_s):
            raise TimeoutError(f"bridge {self.name} did not connect: {self.errors[-3:]}")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: whatever batch it holds is cut off mid-way."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


class Server:
    """``gridvend cloud serve`` on a port (the API the vend probe sells through)."""

    def __init__(self, db_url: str, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [GRIDVEND, "cloud", "serve", "--database", db_url, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


class LoadWorker:
    """A load process and its control pipe."""

    def __init__(self, name: str, specs: list[dict[str, Any]], options: dict[str, Any]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pipe, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=load.main, args=(child, name, specs, options), name=name, daemon=True
        )
        self.proc.start()
        child.close()
        self._lock = threading.Lock()

    def call(self, op: str, timeout_s: float = 120.0, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self.pipe.send({"op": op, **fields})
            if not self.pipe.poll(timeout_s):
                raise TimeoutError(f"load process {self.proc.name} did not answer {op!r}")
            answer: dict[str, Any] = self.pipe.recv()
            return answer

    def stop(self) -> None:
        with contextlib.suppress(OSError, EOFError, TimeoutError):
            self.call("stop", 30)
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.pipe.close()


def forget_session(url: str, client_id: str) -> None:
    """Drop the broker's persistent session of a bridge that will not run again, so the broker
    stops queueing every uplink for it (connect once with a clean session)."""
    parts = urlsplit(url)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True, protocol=mqtt.MQTTv311
    )
    done = threading.Event()
    client.on_connect = lambda *a: done.set()
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, 30)
        client.loop_start()
        done.wait(10)
        client.disconnect()
    finally:
        client.loop_stop()
        client._reset_sockets()


def wait_until(check: Any, timeout_s: float, what: str, every_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} after {timeout_s:.0f} s")
        time.sleep(every_s)
