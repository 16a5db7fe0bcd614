"""How both sides reach the MQTT broker: the broker's URL, credentials and TLS, and the options
every gridvend connection uses. The collector's link (edge/mqtt.py, driven from asyncio) and the
bridge's (cloud/bridge/link.py, paho's own thread) differ in how they run paho; what they say to
the broker is decided here, once.

- ``mqtt://host:port`` (1883 by default) or ``mqtts://host:port`` (TLS, 8883 by default);
  ``ca_file`` is the CA that signed the broker's certificate (the system's CAs without it).
- ``username`` / ``password``: the broker's password file (``gridvend provision`` writes it and
  the ACL that goes with it).
- MQTT 3.1.1, QoS 1, a persistent session (``clean_session=False``: the broker keeps the
  subscriptions and queues QoS 1 messages while a side is away), no limit on paho's own queue
  (both sides bound what they hand it), keep-alive ``keepalive_s``.
- TCP_NODELAY on the socket: a result or an ack is one small packet that must not wait behind
  the PUBACK written just before it for the peer's delayed ACK (40 ms on Linux). Brokers should
  set ``set_tcp_nodelay true`` for the same reason (docs/architecture.md).

A new broker option (client certificates, a TLS version) is a field of :class:`Broker` and a line
in :func:`client`; both sides then have it.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

DEFAULT_URL = "mqtt://127.0.0.1:1883"
SCHEMES = {"mqtt": (1883, False), "mqtts": (8883, True)}
KEEPALIVE_S = 30
QOS = 1


class BrokerError(ValueError):
    """The broker settings cannot be used (a bad URL, a CA file that cannot be read)."""


class Endpoint(NamedTuple):
    """Where to connect."""

    host: str
    port: int
    tls: bool


@dataclass
class Broker:
    """Where and how to connect (see the module docstring)."""

    url: str = DEFAULT_URL
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    keepalive_s: int = KEEPALIVE_S

    def endpoint(self) -> Endpoint:
        """Host, port and whether TLS is on, from the URL; ``BrokerError`` names what is wrong."""
        parts = urlsplit(self.url)
        if parts.scheme not in SCHEMES:
            raise BrokerError(
                f"broker url {self.url!r}: scheme must be mqtt:// or mqtts:// (TLS); "
                "write mqtt://HOST:PORT"
            )
        if not parts.hostname:
            raise BrokerError(f"broker url {self.url!r} has no host")
        default_port, tls = SCHEMES[parts.scheme]
        try:
            port = parts.port or default_port
        except ValueError:
            raise BrokerError(f"broker url {self.url!r} has a bad port") from None
        return Endpoint(parts.hostname, port, tls)

    def check(self) -> Endpoint:
        """:meth:`endpoint`, and the CA file readable when TLS is on: at start-up, naming the
        file, rather than at the first connect."""
        where = self.endpoint()
        if where.tls and self.ca_file is not None:
            try:
                with open(self.ca_file, "rb"):
                    pass
            except OSError as exc:
                raise BrokerError(f"broker ca_file {self.ca_file}: {exc.strerror}") from None
        return where


def client(broker: Broker, client_id: str, *, max_inflight: int) -> mqtt.Client:
    """A paho client saying what every gridvend link says (see the module docstring); the
    caller adds its will and callbacks and runs it. Raises ``BrokerError`` for a bad URL."""
    where = broker.endpoint()
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    if broker.username:
        c.username_pw_set(broker.username, broker.password)
    if where.tls:
        c.tls_set(ca_certs=broker.ca_file)
    c.max_inflight_messages_set(max_inflight)
    c.max_queued_messages_set(0)
    return c


def nodelay(sock: Any) -> None:
    """Turn Nagle off on a connected socket (see the module docstring); a socket that cannot
    (a test's socket pair) is left as it is."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
