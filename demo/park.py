"""A simulated park, run as the user would run it: ``gridvend sim`` per bus, ``gridvend edge run``
per collector, ``gridvend cloud bridge`` and ``gridvend cloud serve``, each a child process
with its log in ``<folder>/logs``. Used by ``gridvend demo`` and by the end-to-end tests.

:class:`Park` provisions everything from a :class:`Plan` (collectors, buses, meters): the
cloud database (site, buildings, floors, units, collectors with their keys, meters), the
collectors' key files and ``edge.toml`` (via ``provisioning.gateway``), then starts the
processes in order: simulators (their ready line gives the port each listens on), agents,
bridge, API. Children get ``PR_SET_PDEATHSIG`` so none outlives the park, even on a kill -9.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from cloud.db import Database
from cloud.park import inventory
from cloud.payments import config as payment_config
from edge.sim import ControlClient
from provisioning.broker import BrokerDir
from provisioning.gateway import provision_gateway

SIGKILL_AFTER_S = 15.0


def gridvend_argv() -> list[str]:
    """How to run ``gridvend`` (the console script beside this Python, else ``-m``)."""
    script = Path(sys.executable).with_name("gridvend")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from gridvend.cli import main; sys.exit(main())"]


def die_with_parent() -> None:  # runs in the child between fork and exec
    """``preexec_fn`` of every child: SIGTERM when the park dies, its own process group."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setpgrp()  # our own signals only: Ctrl-C goes to the park, which stops us in order


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    info: dict[str, Any] = field(default_factory=dict)
    pump: threading.Thread | None = None  # drains stdout after the ready line

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class Children:
    """Starts children, remembers them, stops them newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.items: list[Child] = []

    def start(
        self,
        name: str,
        args: list[str],
        env: dict[str, str] | None = None,
        ready_line: bool = False,
    ) -> Child:
        """Start ``gridvend args``; with ``ready_line``, wait for its first stdout line (JSON)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        out: IO[bytes] = open(log, "ab")  # noqa: SIM115 (kept open for the child's life)
        proc = subprocess.Popen(
            [*gridvend_argv(), *args],
            stdout=subprocess.PIPE if ready_line else out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            preexec_fn=die_with_parent,
        )
        child = Child(name, proc, log)
        self.items.append(child)
        out.close()
        if ready_line:
            child.info = self._ready(child, log)
        return child

    def _ready(self, child: Child, log: Path, timeout_s: float = 30.0) -> dict[str, Any]:
        assert child.proc.stdout is not None
        got: dict[str, bytes] = {}
        stdout = cast(io.BufferedReader, child.proc.stdout)  # Popen(stdout=PIPE): buffered

        def pump() -> None:
            got["line"] = stdout.readline()
            with open(log, "ab") as f:  # keep draining so the child never blocks on stdout
                for chunk in iter(lambda: stdout.read1(4096), b""):
                    f.write(chunk)

        child.pump = threading.Thread(target=pump, daemon=True)
        child.pump.start()
        deadline = time.monotonic() + timeout_s
        while "line" not in got and time.monotonic() < deadline and child.alive():
            time.sleep(0.02)
        line = got.get("line", b"")
        if not line:
            raise RuntimeError(f"{child.name} did not start:\n{child.tail()}")
        return dict(json.loads(line))

    def stop_all(self) -> None:
        """SIGTERM newest first (each may finish cleanly), SIGKILL what is left after a while."""
        for child in reversed(self.items):
            if child.alive():
                with contextlib.suppress(ProcessLookupError):
                    child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(SIGKILL_AFTER_S)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
            if child.pump is not None:  # it ends at EOF now that the child is gone
                child.pump.join(5)
            if child.proc.stdout is not None:
                child.proc.stdout.close()
        self.items.clear()


@dataclass
class BusPlan:
    name: str
    model: str
    count: int
    prepaid: bool = True

    @property
    def protocol(self) -> str:
        return "dlt645" if self.model == "dlt645" else "modbus"

    def address(self, i: int) -> str:
        """The i-th meter's address (1-based) as the simulator and the agent name it."""
        return f"{i:012d}" if self.protocol == "dlt645" else str(i)


@dataclass
class GatewayPlan:
    id: str
    building: str
    floor: str
    buses: list[BusPlan]


@dataclass
class MeterPlan:
    id: str
    gateway: str
    bus: str
    address: str
    model: str
    prepaid: bool
    unit: str | None = None


@dataclass
class Plan:
    site: str
    site_name: str
    gateways: list[GatewayPlan]
    speed: float = 1.0
    report_s: int = 30
    heartbeat_s: float = 30.0
    ack_timeout_s: float = 30.0
    poll_s: float | None = None
    price_micro_yuan_per_kwh: int = 1_000_000
    units: dict[str, str] = field(default_factory=dict)  # meter id -> unit number
    edge_defaults: dict[str, Any] = field(default_factory=dict)

    def meters(self) -> list[MeterPlan]:
        out = []
        for gw in self.gateways:
            for bus in gw.buses:
                for i in range(1, bus.count + 1):
                    mid = f"{gw.id}-{bus.name}-{i:02d}"
                    out.append(
                        MeterPlan(
                            mid, gw.id, bus.name, bus.address(i), bus.model, bus.prepaid,
                            self.units.get(mid),
                        )
                    )  # fmt: skip
        return out


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if value is None:
        raise ValueError("TOML has no null")
    raise ValueError(f"cannot write {value!r} as TOML")


def tune_edge_toml(text: str, intervals: dict[str, Any], tables: dict[str, dict[str, Any]]) -> str:
    """Change ``[intervals]`` values of a provisioned edge.toml and append whole tables."""
    for key, value in intervals.items():
        pattern = re.compile(rf"^{key} = .*$", re.MULTILINE)
        if pattern.search(text):
            text = pattern.sub(f"{key} = {_toml(value)}", text, count=1)
        else:
            text = text.replace("[intervals]\n", f"[intervals]\n{key} = {_toml(value)}\n", 1)
    for name, table in tables.items():
        if table:
            text += f"\n[{name}]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items())
    return text


def wait_http(url: str, timeout_s: float = 30.0) -> None:
    """Block until ``url`` answers (any HTTP status)."""

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} does not answer after {timeout_s} s") from None
            time.sleep(0.1)


class Park:
    """A running simulated park (see the module docstring)."""

    def __init__(
        self,
        plan: Plan,
        folder: Path,
        database_url: str,
        broker_url: str,
        broker_dir: BrokerDir | None = None,
    ) -> None:
        """``broker_dir``: the folder of a broker that checks passwords and the ACL; provisioning
        adds each collector to it and the bridge gets its credentials. Without it the broker
        must let anyone in (a test's open broker)."""
        self.plan = plan
        self.folder = Path(folder)
        self.database_url = database_url
        self.broker_url = broker_url
        self.broker_dir = broker_dir
        self.children = Children(self.folder / "logs")
        self.db = Database(database_url)
        self.sims: dict[tuple[str, str], Child] = {}
        self.configs: dict[str, Path] = {}
        self.agents: dict[str, Child] = {}
        self.meters = {m.id: m for m in plan.meters()}
        self.api_url: str | None = None

    # --- set-up -------------------------------------------------------------------------------

    def seed_inventory(self) -> None:
        """Schema, site, places, units and meters (collectors get their keys in provision)."""

        self.db.upgrade()
        with self.db.session() as s:
            inventory.upsert_site(s, self.plan.site, self.plan.site_name)
            inventory.set_defaults(
                s, self.plan.site, price_micro_yuan_per_kwh=self.plan.price_micro_yuan_per_kwh
            )
            for gw in self.plan.gateways:
                inventory.upsert_place(s, self.plan.site, gw.building, gw.floor)
            for meter in self.meters.values():
                if meter.unit:
                    gw = next(g for g in self.plan.gateways if g.id == meter.gateway)
                    inventory.upsert_unit(s, self.plan.site, gw.building, gw.floor, meter.unit)

    def start_simulators(self, seed: int = 1) -> None:
        for gw in self.plan.gateways:
            for n, bus in enumerate(gw.buses):
                args = ["sim", "--model", bus.model, "--count", str(bus.count)]
                args += ["--listen", "tcp://127.0.0.1:0", "--control", "tcp://127.0.0.1:0"]
                args += ["--speed", str(self.plan.speed), "--seed", str(seed + n)]
                child = self.children.start(f"sim-{gw.id}-{bus.name}", args, ready_line=True)
                self.sims[(gw.id, bus.name)] = child

    def provision(self) -> None:
        """Each collector's key, edge.toml (buses at the simulators) and cloud record."""

        intervals: dict[str, Any] = {
            "report_s": self.plan.report_s,
            "heartbeat_s": self.plan.heartbeat_s,
        }
        if self.plan.poll_s is not None:
            intervals["tick_s"] = self.plan.poll_s
        for gw in self.plan.gateways:
            out = self.folder / "collectors" / gw.id
            buses = [
                {"name": b.name, "url": self.sims[(gw.id, b.name)].info["listen"][0],
                 "model": b.model}
                for b in gw.buses
            ]  # fmt: skip
            meters = [
                {"id": m.id, "bus": m.bus, "address": m.address}
                for m in self.meters.values()
                if m.gateway == gw.id
            ]
            paths = provision_gateway(
                self.plan.site, gw.id, out, buses=buses, meters=meters, broker=self.broker_url,
                force=True,
            )  # fmt: skip
            text = paths["config"].read_text(encoding="utf-8")
            text = tune_edge_toml(
                text,
                intervals,
                {"sync": {"ack_timeout_s": self.plan.ack_timeout_s, "backoff_max_s": 5},
                 "defaults": self.plan.edge_defaults},
            )  # fmt: skip
            paths["config"].write_text(text, encoding="utf-8")
            self.configs[gw.id] = paths["config"]
            record = json.loads(paths["record"].read_text(encoding="utf-8"))
            if self.broker_dir is not None:
                self.broker_dir.add_collector(self.plan.site, gw.id, record["mqtt_password"])
            with self.db.session() as s:
                inventory.upsert_gateway(
                    s, gw.id, self.plan.site, record["key_hex"], key_id=record["key_id"],
                    building=gw.building, floor=gw.floor,
                )  # fmt: skip
                for m in self.meters.values():
                    if m.gateway == gw.id:
                        inventory.upsert_meter(
                            s, m.id, gw.id, m.bus, m.address, m.model, unit_no=m.unit,
                            prepaid=m.prepaid,
                        )  # fmt: skip
        if self.broker_dir is not None:
            self.broker_dir.save()
            self.broker_dir.reload()  # a running broker rereads the files; else it reads them

    # --- processes ------------------------------------------------------------------------------

    def start_agents(self) -> None:
        for gw, config in self.configs.items():
            self.start_agent(gw, config)

    def start_agent(self, gw: str, config: Path | None = None) -> Child:
        config = config or self.configs[gw]
        child = self.children.start(f"edge-{gw}", ["edge", "run", "--config", str(config)])
        self.agents[gw] = child
        return child

    def stop_agent(self, gw: str) -> None:
        child = self.agents.pop(gw)
        child.proc.send_signal(signal.SIGTERM)
        child.proc.wait(SIGKILL_AFTER_S)

    def start_bridge(self, *extra: str) -> Child:
        args = ["cloud", "bridge", "--database", self.database_url, "--broker", self.broker_url]
        env: dict[str, str] = {}
        if self.broker_dir is not None:
            creds = self.broker_dir.bridge_credentials()
            args += ["--username", creds["GRIDVEND_BROKER_USERNAME"]]
            env["GRIDVEND_BROKER_PASSWORD"] = creds["GRIDVEND_BROKER_PASSWORD"]  # not in ps
        return self.children.start("bridge", [*args, *extra], env=env)

    def start_api(self, port: int, *extra: str) -> str:
        env = {"GRIDVEND_DATABASE_URL": self.database_url}
        args = ["cloud", "serve", "--host", "127.0.0.1", "--port", str(port), *extra]
        # The park's folder is the instance: the payment jobs find the same sandbox bank there.
        args += ["--instance", str(self.folder)]
        self.ask_for_the_sandbox()
        child = self.children.start("api", args, env=env)
        self.api_url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{self.api_url}/api/v1/openapi.json")
        except TimeoutError:
            raise RuntimeError(f"the API did not start:\n{child.tail()}") from None
        return self.api_url

    def ask_for_the_sandbox(self) -> None:
        """The demo pays through the sandbox, which a cloud never offers unasked (its pay page
        credits for nothing): the park's ``payments.json`` asks for it, unless one is there."""
        path = self.folder / payment_config.FILE
        if not path.exists():
            settings = payment_config.sandbox_settings(self.folder)
            path.write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")

    def start_payments(self, *extra: str) -> Child:
        """The payment jobs (``gridvend cloud payments run``): orders followed, stuck ones
        queried, the previous day reconciled; the same instance folder as the API."""
        self.ask_for_the_sandbox()
        args = ["cloud", "payments", "run", "--database", self.database_url]
        args += ["--instance", str(self.folder), *extra]
        return self.children.start("payments", args)

    def start_notifier(self, config: Path, *extra: str) -> Child:
        """The notifier (``gridvend cloud notify``): alarms, top-ups and trips into texts, out
        through the channels of ``config`` (``cloud.notify.config``)."""
        args = ["cloud", "notify", "--config", str(config), "--database", self.database_url]
        return self.children.start("notify", [*args, *extra])

    def check_alive(self) -> list[str]:
        """Names of children that exited (with their log tails), for error messages."""
        return [f"{c.name} exited:\n{c.tail()}" for c in self.children.items if not c.alive()]

    # --- the simulated meters -------------------------------------------------------------------

    def control(self, meter_id: str, cmd: str, **fields: Any) -> dict[str, Any]:
        """A control-channel request for one simulated meter (its true state, its load)."""

        m = self.meters[meter_id]
        url = self.sims[(m.gateway, m.bus)].info["control"]
        address: Any = int(m.address)
        with ControlClient(url) as ctl:
            return ctl.call(cmd, address=address, **fields)

    def sim_state(self, meter_id: str) -> dict[str, Any]:
        return dict(self.control(meter_id, "state")["state"])

    def set_load(self, meter_id: str, power_w: int | None) -> None:
        self.control(meter_id, "set_load", power_w=power_w)

    def stop(self) -> None:
        self.children.stop_all()
        self.db.dispose()
