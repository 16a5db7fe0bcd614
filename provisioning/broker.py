"""The broker's security, generated: who may connect (a Mosquitto password file), what each may
do (an ACL), and the Mosquitto config that uses them, all in one *broker folder*.

Theory of operation
-------------------
``broker.json`` in the folder is the one list of principals and listener settings; ``passwd``,
``acl`` and ``mosquitto.conf`` are made from it (and ``passwd`` keeps the hashes of users that
already exist). Principals, one namespace of user names:

============ ================================================================================
bridge       ``gridvend-bridge``: reads every collector's ``up`` and ``status``, writes every
             ``down`` and the ``north/`` subtrees. Its password is in ``bridge.env`` (0600),
             the file a systemd unit or the demo hands to ``gridvend cloud bridge``.
collector    user name = gateway id: writes only its own ``up`` and ``status``, reads only its
             own ``down``. Its password goes in its edge.toml; the folder keeps only the hash.
integrator   a third party: reads one site's ``north/#``, writes nothing.
============ ================================================================================

Anonymous clients are refused (``allow_anonymous false``); no ACL line stands before the first
``user``, so an anonymous client would get nothing anyway. Topic levels are checked names
(``[A-Za-z0-9._-]``), so no id can carry ``+``, ``#`` or ``/`` into an ACL line, and the id
``north`` is reserved: a collector called so would publish into the north subtree.

Passwords are hashed as ``mosquitto_passwd`` does (``provisioning.mosquitto_auth``). Files are written to temporary names
first and renamed into place together (:meth:`BrokerDir.prepare` / :func:`commit`), so a broker
never reads a half-written ACL, and a caller can write its other files in the same step.
Mosquitto rereads the password file and the ACL on SIGHUP (:meth:`BrokerDir.reload`), so a new
collector or integrator needs no broker restart.

Two flavours of config: ``standalone`` (the demo, a test: the broker runs from this folder, with
its persistence, pid file and log here) and ``system`` (a ``conf.d`` snippet for the Debian
Mosquitto service, whose main config already sets those).
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioning import tls
from provisioning.mosquitto_auth import (
    BRIDGE_USER,
    RESERVED,
    BrokerSetupError,
    acl_lines_bridge,
    acl_lines_collector,
    acl_lines_integrator,
    check_name,
    check_password,
    hash_password,
    new_password,
    read_passwd,
)

SYSTEM_PID_FILE = "/run/mosquitto/mosquitto.pid"  # Debian's /etc/mosquitto/mosquitto.conf


def _write_tmp(path: Path, text: str, mode: int) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    return tmp


def commit(staged: list[tuple[Path, Path]]) -> None:
    """Rename staged files into place (each rename is atomic; they are done back to back)."""
    for tmp, final in staged:
        os.replace(tmp, final)


def discard(staged: list[tuple[Path, Path]]) -> None:
    """Remove staged files that were not committed."""
    for tmp, _ in staged:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _mosquitto_gid() -> int | None:
    """The ``mosquitto`` group when we are root (the broker drops to that user and must read
    the password file, the ACL and the server key); None otherwise."""
    if os.geteuid() != 0:
        return None
    try:
        return grp.getgrnam("mosquitto").gr_gid
    except KeyError:
        return None


@dataclass
class BrokerDir:
    """One broker's security folder (see the module docstring)."""

    folder: Path
    flavour: str = "standalone"  # or "system"
    host: str = "127.0.0.1"
    port: int = 1883
    tls_host: str | None = None
    tls_port: int | None = None
    public_host: str = "127.0.0.1"
    bridge_user: str = BRIDGE_USER
    collectors: dict[str, str] = field(default_factory=dict)  # gateway -> site
    integrators: dict[str, str] = field(default_factory=dict)  # name -> site
    hashes: dict[str, str] = field(default_factory=dict)  # user -> $7$ hash

    # --- files ---------------------------------------------------------------------------

    @property
    def settings_file(self) -> Path:
        return self.folder / "broker.json"

    @property
    def passwd_file(self) -> Path:
        return self.folder / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.folder / "acl"

    @property
    def conf_file(self) -> Path:
        return self.folder / "mosquitto.conf"

    @property
    def bridge_env_file(self) -> Path:
        return self.folder / "bridge.env"

    @property
    def tls_dir(self) -> Path:
        return self.folder / "tls"

    @property
    def ca_file(self) -> Path | None:
        return self.tls_dir / "ca.crt" if self.tls_port else None

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def pid_file(self) -> Path:
        return Path(SYSTEM_PID_FILE) if self.flavour == "system" else self.folder / "mosquitto.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "mosquitto.log"

    # --- making and opening ------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        folder: Path,
        *,
        port: int = 1883,
        host: str = "127.0.0.1",
        tls_port: int | None = None,
        tls_host: str = "0.0.0.0",
        names: list[str] | None = None,
        public_host: str | None = None,
        flavour: str = "standalone",
    ) -> BrokerDir:
        """A new broker folder: the bridge's credentials, an empty list of collectors, the
        config, and with ``tls_port`` a CA and a server certificate for ``names``."""
        if flavour not in ("standalone", "system"):
            raise BrokerSetupError(f"flavour {flavour!r} must be standalone or system")
        folder = Path(folder).resolve()
        if (folder / "broker.json").exists():
            raise BrokerSetupError(f"{folder} is already a broker folder (broker.json exists)")
        folder.mkdir(parents=True, exist_ok=True)
        names = list(names or [])
        public = public_host or (names[0] if names else host)
        if tls_port and not names:
            names = [public, "127.0.0.1", "localhost"]
        bd = cls(
            folder, flavour, host, port, tls_host if tls_port else None, tls_port, public
        )  # fmt: skip
        password = new_password()
        bd.hashes[bd.bridge_user] = hash_password(password)
        if tls_port:
            tls.make_ca(bd.tls_dir)
            tls.make_server_cert(bd.tls_dir, names)
            bd._share_with_broker(bd.tls_dir / "server.key")
        if flavour == "standalone":
            bd.data_dir.mkdir(exist_ok=True)
        staged = bd.prepare()
        staged.append((_write_tmp(bd.bridge_env_file, bd._bridge_env(password), 0o600),
                       bd.bridge_env_file))  # fmt: skip
        commit(staged)
        return bd

    @classmethod
    def open(cls, folder: Path) -> BrokerDir:
        """The broker folder made by :meth:`create`."""
        folder = Path(folder).resolve()
        try:
            data = json.loads((folder / "broker.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BrokerSetupError(
                f"{folder} is not a broker folder (no broker.json); make one with "
                "`gridvend provision broker --dir DIR`"
            ) from None
        except ValueError as exc:
            raise BrokerSetupError(f"{folder / 'broker.json'} is damaged: {exc}") from None
        bd = cls(
            folder,
            data["flavour"],
            data["host"],
            int(data["port"]),
            data.get("tls_host"),
            data.get("tls_port"),
            data.get("public_host") or data["host"],
            data.get("bridge_user", BRIDGE_USER),
            dict(data.get("collectors", {})),
            dict(data.get("integrators", {})),
        )
        bd.hashes = read_passwd(bd.passwd_file)
        return bd

    # --- principals ----------------------------------------------------------------------------

    def _check_free(self, name: str, role: str) -> None:
        if name in RESERVED or name == self.bridge_user:
            raise BrokerSetupError(f"{name!r} is reserved; choose another {role} id")
        other = "integrator" if role == "collector" else "collector"
        taken = self.integrators if role == "collector" else self.collectors
        if name in taken:
            raise BrokerSetupError(f"{name!r} is already the user name of an {other}")

    def add_collector(self, site: str, gateway: str, password: str) -> None:
        """Let collector ``gateway`` of ``site`` connect with ``password`` (replaces its old
        password and site)."""
        check_name(site, "site")
        check_name(gateway, "collector id")
        self._check_free(gateway, "collector")
        self.collectors[gateway] = site
        self.hashes[gateway] = hash_password(password)

    def add_integrator(self, site: str, name: str, password: str | None = None) -> str:
        """A read-only third party for ``site``'s north topics; returns its password."""
        check_name(site, "site")
        check_name(name, "integrator name")
        self._check_free(name, "integrator")
        password = password or new_password()
        self.integrators[name] = site
        self.hashes[name] = hash_password(password)
        return password

    def remove(self, name: str) -> str:
        """Take a collector's or integrator's access away; returns its role."""
        if name in self.collectors:
            del self.collectors[name]
            role = "collector"
        elif name in self.integrators:
            del self.integrators[name]
            role = "integrator"
        else:
            raise BrokerSetupError(f"no collector or integrator is called {name!r}")
        self.hashes.pop(name, None)
        return role

    def client_url(self, tls: bool | None = None) -> str:
        """The URL collectors and integrators use (TLS when the broker has it, unless asked)."""
        use_tls = bool(self.tls_port) if tls is None else tls
        if use_tls and not self.tls_port:
            raise BrokerSetupError("this broker has no TLS listener (make it with --tls-port)")
        if use_tls:
            return f"mqtts://{self.public_host}:{self.tls_port}"
        return f"mqtt://{self.public_host}:{self.port}"

    def bridge_credentials(self) -> dict[str, str]:
        """``GRIDVEND_BROKER_*`` settings of the bridge, from ``bridge.env``."""
        out: dict[str, str] = {}
        for line in self.bridge_env_file.read_text(encoding="utf-8").splitlines():
            key, sep, value = line.partition("=")
            if sep and not key.startswith("#"):
                out[key.strip()] = value.strip()
        return out

    # --- rendering ------------------------------------------------------------------------------

    def acl_text(self) -> str:
        lines = [
            "# gridvend broker ACL, made by `gridvend provision` from broker.json: do not edit.",
            "# Nothing stands before the first `user`: an anonymous client may do nothing.",
            "",
            *acl_lines_bridge(self.bridge_user),
        ]
        for gateway, site in sorted(self.collectors.items()):
            lines += ["", *acl_lines_collector(site, gateway)]
        for name, site in sorted(self.integrators.items()):
            lines += ["", *acl_lines_integrator(site, name)]
        return "\n".join(lines) + "\n"

    def passwd_text(self) -> str:
        users = [self.bridge_user, *sorted(self.collectors), *sorted(self.integrators)]
        missing = [u for u in users if u not in self.hashes]
        if missing:
            raise BrokerSetupError(f"no password hash for {', '.join(missing)}")
        return "".join(f"{u}:{self.hashes[u]}\n" for u in users)

    def conf_text(self) -> str:
        f = self.folder
        lines = [
            f"# Mosquitto config for gridvend ({self.flavour}), made by `gridvend provision`.",
            "per_listener_settings false",
            "allow_anonymous false",
            f"password_file {f / 'passwd'}",
            f"acl_file {f / 'acl'}",
            # A small result must not wait for a delayed ACK behind a PUBACK (~40 ms).
            "set_tcp_nodelay true",
            # The bridge's session queues every uplink while it is down: more than the default
            # 1000 (beyond that Mosquitto drops silently); collectors resend what is not acked.
            "max_queued_messages 100000",
            "max_inflight_messages 100",
            f"listener {self.port} {self.host}",
        ]
        if self.tls_port:
            t = self.tls_dir
            lines += [
                f"listener {self.tls_port} {self.tls_host}",
                f"cafile {t / 'ca.crt'}",
                f"certfile {t / 'server.crt'}",
                f"keyfile {t / 'server.key'}",
                "tls_version tlsv1.2",
            ]
        if self.flavour == "standalone":
            lines += [
                "persistence true",
                f"persistence_location {self.data_dir}/",
                "autosave_interval 30",
                f"pid_file {self.pid_file}",
                f"log_dest file {self.log_file}",
                "log_type error",
                "log_type warning",
                "log_type notice",
            ]
            if os.geteuid() == 0:
                # As root Mosquitto drops to the `mosquitto` user, which cannot read files in a
                # private folder (a 0700 temp dir, /root): a standalone broker stays root.
                lines.append("user root")
        return "\n".join(lines) + "\n"

    def _bridge_env(self, password: str) -> str:
        lines = [
            "# The cloud bridge's broker settings (systemd EnvironmentFile=); keep it 0600.",
            f"GRIDVEND_BROKER_URL=mqtt://{'127.0.0.1' if self.host == '0.0.0.0' else self.host}:"
            f"{self.port}",
            f"GRIDVEND_BROKER_USERNAME={self.bridge_user}",
            f"GRIDVEND_BROKER_PASSWORD={password}",
        ]
        if self.tls_port:  # for a bridge on another host: mqtts://HOST:TLS_PORT and this CA
            lines.append(f"GRIDVEND_BROKER_CA_FILE={self.tls_dir / 'ca.crt'}")
        return "\n".join(lines) + "\n"

    def _settings_text(self) -> str:
        data: dict[str, Any] = {
            "version": 1,
            "flavour": self.flavour,
            "host": self.host,
            "port": self.port,
            "tls_host": self.tls_host,
            "tls_port": self.tls_port,
            "public_host": self.public_host,
            "bridge_user": self.bridge_user,
            "collectors": dict(sorted(self.collectors.items())),
            "integrators": dict(sorted(self.integrators.items())),
        }
        return json.dumps(data, indent=2) + "\n"

    def _share_with_broker(self, path: Path) -> None:
        gid = _mosquitto_gid()
        if gid is not None and self.flavour == "system":
            os.chown(path, 0, gid)

    # --- writing ---------------------------------------------------------------------------------

    def prepare(self) -> list[tuple[Path, Path]]:
        """Write every generated file to a temporary name; returns ``(tmp, final)`` pairs for
        :func:`commit` (or :func:`discard`)."""
        readable = 0o640 if self.flavour == "system" else 0o600
        files = [
            (self.passwd_file, self.passwd_text(), readable),
            (self.acl_file, self.acl_text(), readable),
            (self.conf_file, self.conf_text(), 0o644),
            (self.settings_file, self._settings_text(), 0o600),
        ]
        staged: list[tuple[Path, Path]] = []
        try:
            for final, text, mode in files:
                tmp = _write_tmp(final, text, mode)
                staged.append((tmp, final))
                if mode == 0o640:
                    self._share_with_broker(tmp)
        except BaseException:
            discard(staged)
            raise
        return staged

    def save(self) -> None:
        commit(self.prepare())

    def reload(self) -> bool:
        """SIGHUP the running broker so it rereads the password file and the ACL; False when
        none runs (it reads them when it starts)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "mosquitto":
                    return False
            os.kill(pid, signal.SIGHUP)
        except (OSError, ValueError):
            return False
        return True


__all__ = [
    "BRIDGE_USER",
    "BrokerDir",
    "BrokerSetupError",
    "check_password",
    "commit",
    "discard",
    "hash_password",
    "new_password",
]
