"""Real services the tests start themselves: Mosquitto brokers on free loopback ports, socat pty
pairs. Tests that break things (stop a broker, restart it) use their own instances, never the
machine's shared ones."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from bench.brokers import free_port as free_port  # one home: ports outside the ephemeral range

LOOPBACK = "127.0.0.1"


def wait_port(port: int, timeout_s: float = 10.0, host: str = LOOPBACK) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listens on {host}:{port} after {timeout_s} s"
                ) from None
            time.sleep(0.02)


def _mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError(
        "mosquitto is not installed; `make test` installs it (apt-get install mosquitto)"
    )


class Mosquitto:
    """A private Mosquitto on a free loopback port, with its own config, which a test can stop,
    start and restart. Persistence is off unless asked for (as on a default broker install).

    Security options (all off by default, so existing tests keep an open broker): a
    ``password_file`` (anonymous clients are then refused unless ``allow_anonymous`` says
    otherwise), an ``acl_file``, and ``tls`` (``{"cafile", "certfile", "keyfile"}``) for a second,
    TLS listener on ``tls_port``. ``reload()`` sends SIGHUP (Mosquitto rereads the password file
    and the ACL). ``config_file`` runs a complete config made elsewhere (``port`` must be the
    one it listens on). As root, Mosquitto drops to the ``mosquitto`` user, which cannot read
    files in a 0700 temp folder: test brokers say ``user root``."""

    def __init__(
        self,
        port: int | None = None,
        persistence: bool = False,
        max_queued_messages: int = 1_000_000,
        extra_config: str = "",
        *,
        password_file: str | os.PathLike[str] | None = None,
        acl_file: str | os.PathLike[str] | None = None,
        allow_anonymous: bool | None = None,
        tls: dict[str, str | os.PathLike[str]] | None = None,
        tls_port: int | None = None,
        config_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.tls_port = (tls_port or free_port()) if tls else None
        self.dir = Path(tempfile.mkdtemp(prefix="gridvend-mosq-"))
        self.log = self.dir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if config_file is not None:
            self.config = Path(config_file)
            return
        self.config = self.dir / "mosquitto.conf"
        if allow_anonymous is None:
            allow_anonymous = password_file is None
        lines = [
            "per_listener_settings false",
            f"listener {self.port} {LOOPBACK}",
            f"allow_anonymous {'true' if allow_anonymous else 'false'}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.dir}/",
            f"max_queued_messages {max_queued_messages}",
            "max_inflight_messages 100",
            f"log_dest file {self.log}",
            "log_type error",
            "log_type warning",
        ]
        if password_file is not None:
            lines.append(f"password_file {Path(password_file).resolve()}")
        if acl_file is not None:
            lines.append(f"acl_file {Path(acl_file).resolve()}")
        if tls:
            lines += [
                f"listener {self.tls_port} {LOOPBACK}",
                f"cafile {Path(tls['cafile']).resolve()}",
                f"certfile {Path(tls['certfile']).resolve()}",
                f"keyfile {Path(tls['keyfile']).resolve()}",
            ]
        if os.geteuid() == 0:
            lines.append("user root")
        self.config.write_text("\n".join(lines) + "\n" + extra_config)

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    @property
    def tls_url(self) -> str:
        if not self.tls_port:
            raise RuntimeError("this broker has no TLS listener (pass tls=...)")
        return f"mqtts://{LOOPBACK}:{self.tls_port}"

    def start(self) -> Mosquitto:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.proc = subprocess.Popen(
            [_mosquitto_binary(), "-c", str(self.config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_port(self.port)
            if self.tls_port:
                wait_port(self.tls_port)
        except TimeoutError:
            self.stop()
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"mosquitto did not start on port {self.port}: {log}") from None
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: Mosquitto rereads its password file and ACL (no client is disconnected)."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("this broker is not running")
        self.proc.send_signal(signal.SIGHUP)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class PtyPair:
    """Two linked pseudo-terminals made by socat: what one side writes the other reads, as on a
    serial line. `a` and `b` are device paths (symlinks in a private folder)."""

    def __init__(self) -> None:
        if shutil.which("socat") is None:
            raise RuntimeError(
                "socat is not installed; `make test` installs it (apt-get install socat)"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="gridvend-pty-"))
        self.a = str(self.dir / "a")
        self.b = str(self.dir / "b")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> PtyPair:
        self.proc = subprocess.Popen(
            [
                "socat",
                "-d",
                f"pty,raw,echo=0,link={self.a}",
                f"pty,raw,echo=0,link={self.b}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while not (os.path.exists(self.a) and os.path.exists(self.b)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("socat did not create the pty pair")
            time.sleep(0.01)
        return self

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PtyPair:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
