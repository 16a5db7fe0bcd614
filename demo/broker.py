"""The demo's broker: the Debian Mosquitto, run privately from a broker folder that provisioning
made (``provisioning.broker.BrokerDir``): a free loopback port, the generated password file and
ACL (anonymous clients refused), persistence in the demo's data folder. It is a child process
that dies with the demo.

Mosquitto, not an embedded Python broker: the demo shows what a site runs. amqtt (the embedded
broker before) sent every retained message matching *any* session's filter to each new client,
kept no persistent sessions with anonymous access, and dropped in-flight QoS 1 messages after
5 s; it is no longer a dependency.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from demo.park import die_with_parent
from provisioning.broker import BrokerDir

INSTALL_HINT = "install it with `make sysdeps` (apt-get install mosquitto)"


def mosquitto_binary() -> str:
    """The ``mosquitto`` executable, or a RuntimeError that says how to get it."""
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError(f"mosquitto is not installed; {INSTALL_HINT}")


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError from None
            time.sleep(0.05)


class PrivateBroker:
    """Mosquitto running ``broker_dir``'s standalone config (see the module docstring)."""

    def __init__(self, broker_dir: BrokerDir) -> None:
        if broker_dir.flavour != "standalone":
            raise ValueError("the demo runs a standalone broker folder")
        self.dir = broker_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls, folder: Path, port: int, tls_port: int | None = None) -> PrivateBroker:
        """A new broker folder in ``folder`` listening on 127.0.0.1:``port``."""
        names = ["127.0.0.1", "localhost"] if tls_port else None
        bd = BrokerDir.create(folder, port=port, tls_port=tls_port, tls_host="127.0.0.1",
                              names=names)  # fmt: skip
        return cls(bd)

    @property
    def url(self) -> str:
        return self.dir.client_url(tls=False)

    def start(self, timeout_s: float = 15.0) -> PrivateBroker:
        log = open(self.dir.folder / "mosquitto.stderr", "ab")  # noqa: SIM115 (child's life)
        self.proc = subprocess.Popen(
            [mosquitto_binary(), "-c", str(self.dir.conf_file)],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
        )
        log.close()
        try:
            _wait_port(self.dir.port, self.proc, timeout_s)
        except TimeoutError:
            self.stop()
            raise RuntimeError(
                f"mosquitto did not start on 127.0.0.1:{self.dir.port}: {self._log_tail()}"
            ) from None
        return self

    def _log_tail(self) -> str:
        text = ""
        for path in (self.dir.log_file, self.dir.folder / "mosquitto.stderr"):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")[-2000:]
        return text.strip() or "(no log)"

    def reload(self) -> None:
        """Reread the password file and the ACL (after collectors were added)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
