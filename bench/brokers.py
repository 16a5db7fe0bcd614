"""A clustered MQTT broker the benchmarks and tests start themselves: ``nats-server`` nodes on
loopback, joined by routes into one cluster, each with JetStream in its own folder and an
``mqtt {}`` listener (MQTT 3.1.1, QoS 0 and 1; QoS 1 sessions are JetStream streams and
consumers). Never the machine's own NATS (port 4222): every port here is free and private.

Why these settings (``nats-server`` 2.9, the Debian package):

- ``server_name`` per node and a cluster name: JetStream in a cluster requires both.
- ``mqtt.stream_replicas: 3``: the MQTT streams (sessions, messages, retained) are created the
  first time a client connects, with as many replicas as the cluster has *at that moment* unless
  told; two replicas cannot survive the loss of one (no raft majority left), three can.
- :meth:`NatsCluster.start` returns only when every node is routed to the others and follows a
  JetStream meta leader, and a probe client has connected, subscribed with QoS 1 and received a
  message published through another node, so the MQTT streams exist with three replicas before a test's clients
  arrive.

Measured here (2 cores, loopback): a QoS 1 publisher reaches a persistent-session subscriber on
another node at 170–1,500 messages/s per connection, depending on which node leads the
subscriber's JetStream consumer; many connections add up.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

LOOPBACK = "127.0.0.1"

STREAM_REPLICAS = 3


# Ports for the servers the benchmarks and tests start come from below the kernel's ephemeral range
# (net.ipv4.ip_local_port_range, 32768-60999 by default): a port the kernel picked with bind(0)
# and handed back can be taken by anybody's next outgoing connection before the server that was
# to listen on it starts, which the two test workers of `make test` hit ("Address already in
# use"). Each pytest-xdist worker has its own slice, handed out in turn (a released port comes
# back only after the whole slice).
PORTS_FIRST, PORTS_END = 20_000, 32_000
_next_port: list[int] = []


def _port_slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    size = (PORTS_END - PORTS_FIRST) // count
    start = PORTS_FIRST + (index % count) * size
    return range(start, start + size)


def free_port() -> int:
    """A TCP port free on loopback right now, from this process's (test worker's) slice."""
    ports = _port_slice()
    if not _next_port:
        _next_port.append(ports.start + os.getpid() % len(ports))
    for _ in range(len(ports)):
        port = _next_port[0]
        _next_port[0] = ports.start + (port + 1 - ports.start) % len(ports)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port in {ports.start}-{ports.stop - 1}")


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    """Block until something accepts TCP connections on loopback:port."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {LOOPBACK}:{port}") from None
            time.sleep(0.02)


def nats_binary() -> str:
    """The ``nats-server`` executable; `make test` installs the Debian package when missing."""
    for candidate in (shutil.which("nats-server"), "/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if candidate and os.path.exists(candidate):
            return candidate
    raise RuntimeError(
        "nats-server is not installed; `make test` installs it (apt-get install nats-server)"
    )


class NatsNode:
    """One node's ports, folder and process."""

    def __init__(self, index: int, folder: Path) -> None:
        self.index = index
        self.name = f"n{index + 1}"
        self.client_port = free_port()
        self.route_port = free_port()
        self.mqtt_port = free_port()
        self.http_port = free_port()
        self.dir = folder / self.name
        self.store = self.dir / "jetstream"
        self.config = self.dir / "nats.conf"
        self.log = self.dir / "nats.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The node's MQTT listener as a gridvend broker URL."""
        return f"mqtt://{LOOPBACK}:{self.mqtt_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def write_config(self, cluster: str, peers: list[NatsNode], max_ack_pending: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        routes = ", ".join(f"nats://{LOOPBACK}:{p.route_port}" for p in peers if p is not self)
        self.config.write_text(
            f"server_name: {self.name}\n"
            f"listen: {LOOPBACK}:{self.client_port}\n"
            f"http: {LOOPBACK}:{self.http_port}\n"
            f'jetstream {{ store_dir: "{self.store}", max_mem: 256M, max_file: 4G }}\n'
            f"cluster {{ name: {cluster}, listen: {LOOPBACK}:{self.route_port}, "
            f"routes: [ {routes} ] }}\n"
            f"mqtt {{ listen: {LOOPBACK}:{self.mqtt_port}, "
            f"stream_replicas: {STREAM_REPLICAS}, max_ack_pending: {max_ack_pending} }}\n"
        )

    def start(self) -> None:
        if self.running:
            return
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [nats_binary(), "-c", str(self.config), "-l", str(self.log)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: the node dies without a word, as a crashed machine would."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc = None

    def terminate(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def healthy(self, peers: int) -> bool:
        """Routed to ``peers`` other nodes and following a JetStream meta leader. (``/healthz``
        is stricter than MQTT needs: after a restart it reports a server's own retained-message
        consumer "not current" for minutes while MQTT already works.)"""
        try:
            routes = self.monitor("routez").get("num_routes", 0)
            meta = self.monitor("jsz").get("meta_cluster", {})
        except (OSError, ValueError):
            return False
        return bool(routes >= peers and meta.get("leader"))

    def monitor(self, path: str) -> Any:
        """A monitoring endpoint's JSON (``varz``, ``jsz``, ``routez``, ``connz`` …)."""
        url = f"http://{LOOPBACK}:{self.http_port}/{path}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


class NatsCluster:
    """``nodes`` nats-server processes in one cluster (see the module docstring)."""

    def __init__(self, nodes: int = 3, max_ack_pending: int = 4096) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gridvend-nats-"))
        self.name = f"gv{secrets.token_hex(3)}"
        self.nodes = [NatsNode(i, self.dir) for i in range(nodes)]
        for node in self.nodes:
            node.write_config(self.name, self.nodes, max_ack_pending)

    @property
    def urls(self) -> list[str]:
        """Every node's MQTT URL, in node order."""
        return [n.url for n in self.nodes]

    def start(self, timeout_s: float = 60.0) -> NatsCluster:
        """Start every node; return once the cluster carries QoS 1 between nodes."""
        for node in self.nodes:
            node.start()
        deadline = time.monotonic() + timeout_s
        try:
            for node in self.nodes:
                wait_port(node.mqtt_port, max(1.0, deadline - time.monotonic()))
            self.wait_healthy(deadline - time.monotonic())
            self._probe(deadline)
        except (TimeoutError, RuntimeError) as exc:
            logs = "\n".join(f"--- {n.name}\n{n.tail()}" for n in self.nodes)
            self.close()
            raise RuntimeError(f"the NATS cluster did not come up: {exc}\n{logs}") from None
        return self

    def wait_healthy(self, timeout_s: float = 60.0) -> None:
        """Block until every running node is routed to the others and has a meta leader."""
        deadline = time.monotonic() + timeout_s
        while True:
            running = [n for n in self.nodes if n.running]
            sick = [n.name for n in running if not n.healthy(len(running) - 1)]
            if not sick:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nodes {sick} not routed or without a leader after {timeout_s:.0f} s"
                )
            time.sleep(0.1)

    def kill(self, index: int) -> None:
        """SIGKILL one node (its JetStream folder stays, as on a crashed machine's disk)."""
        self.nodes[index].kill()

    def restart(self, index: int, timeout_s: float = 60.0) -> None:
        """Start a killed node again and wait until it has caught up with the cluster."""
        node = self.nodes[index]
        node.start()
        deadline = time.monotonic() + timeout_s
        wait_port(node.mqtt_port, timeout_s)
        self.wait_healthy(deadline - time.monotonic())
        other = next(n for n in self.nodes if n.running and n is not node)
        self._probe(deadline, [node, other])

    def _probe(self, deadline: float, through: list[NatsNode] | None = None) -> None:
        """A QoS 1 round through two nodes; the first MQTT client creates the MQTT streams."""
        got = threading.Event()
        clients: list[Any] = []
        topic = f"gridvend-probe/{secrets.token_hex(4)}"
        try:
            for i, node in enumerate(through or self.nodes[:2]):
                client = mqtt.Client(
                    CallbackAPIVersion.VERSION2,
                    client_id=f"probe-{i}-{secrets.token_hex(4)}",
                    clean_session=True,
                    protocol=mqtt.MQTTv311,
                )
                clients.append(client)
                while True:
                    # The MQTT streams are made on first connect; until the JetStream meta
                    # leader is settled the server refuses the connection: try again.
                    connected = threading.Event()
                    client.on_connect = lambda c, u, f, rc, p, ev=connected: (
                        ev.set() if not rc.is_failure else None
                    )
                    with contextlib.suppress(OSError):
                        client.connect(LOOPBACK, node.mqtt_port, keepalive=30)
                        client.loop_start()
                        if connected.wait(5):
                            break
                        client.loop_stop()
                        # loop_start makes a new socket pair each time; close this one.
                        client._reset_sockets()
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no MQTT session on {node.name}")
                    time.sleep(0.5)
            sub, pub = clients[0], clients[-1]
            subscribed = threading.Event()
            sub.on_subscribe = lambda *a: subscribed.set()
            sub.on_message = lambda *a: got.set()
            sub.subscribe(topic, qos=1)
            if not subscribed.wait(max(1.0, deadline - time.monotonic())):
                raise TimeoutError("the probe subscription was not granted")
            while not got.is_set():
                pub.publish(topic, b"probe", qos=1)
                if got.wait(1.0) or time.monotonic() > deadline:
                    break
            if not got.is_set():
                raise TimeoutError("a QoS 1 message did not cross the cluster")
        finally:
            for client in clients:
                with contextlib.suppress(Exception):
                    client.disconnect()
                    client.loop_stop()
                client._reset_sockets()

    def close(self) -> None:
        for node in self.nodes:
            node.terminate()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
