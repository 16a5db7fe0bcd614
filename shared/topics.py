"""The MQTT topics of protocol version 1 (docs/protocol.md, "Topics"; docs/asyncapi.yaml for
the north side): every builder and the one parser, so the collector, the bridge, provisioning's
ACL and the tests spell them alike.

::

    gridvend/v1/{site}/{gateway}/up       collector → cloud: sealed envelopes, QoS 1
    gridvend/v1/{site}/{gateway}/down     cloud → collector: sealed envelopes, QoS 1
    gridvend/v1/{site}/{gateway}/status   retained "online" / "offline" (the collector's will)
    gridvend/v1/bridge/{client id}        retained "online" / "offline" of each bridge (its will)
    gridvend/v1/{site}/north/...          plain JSON for third parties, published by the bridge:
        meters/{meter}/state (retained), meters/{meter}/readings, events, sales, alarms,
        gateways/{gateway}/status (retained)

Site and gateway ids are 1-64 of ``[A-Za-z0-9._-]`` (edge.toml and the cloud's inventory check
them), so they stand in a topic as they are. Meter ids and other names in north topics are
escaped with :func:`escape_level`: a ``/``, ``+`` or ``#`` in one would change what the topic
means. Sans-I/O: strings in, strings out.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from shared.codec.errors import TopicError

ROOT = "gridvend/v1"
UP = "up"
DOWN = "down"
STATUS = "status"
KINDS = (UP, DOWN, STATUS)
NORTH = "north"

# The payloads of the status topic (retained; "offline" is also the collector's last will).
ONLINE = b"online"
OFFLINE = b"offline"

# What the bridge subscribes to: every collector's uplink and status.
ALL_UP = f"{ROOT}/+/+/{UP}"
ALL_STATUS = f"{ROOT}/+/+/{STATUS}"

# Each bridge's retained "online" / "offline" (its will); collectors watch them all and resend
# what waits for an ack when a bridge comes online. Four levels: never a collector topic.
BRIDGE = "bridge"
ALL_BRIDGES = f"{ROOT}/{BRIDGE}/+"


class Address(NamedTuple):
    """Where a collector topic points: its site, its collector and which of the three it is."""

    site: str
    gateway: str
    kind: str


def gateway(site: str, gateway: str) -> str:
    """``gridvend/v1/{site}/{gateway}``: the level under which a collector's topics live."""
    return f"{ROOT}/{site}/{gateway}"


def up(site: str, gateway: str) -> str:
    """The collector's uplink topic."""
    return f"{ROOT}/{site}/{gateway}/{UP}"


def down(site: str, gateway: str) -> str:
    """The collector's downlink topic."""
    return f"{ROOT}/{site}/{gateway}/{DOWN}"


def status(site: str, gateway: str) -> str:
    """The collector's retained status topic (``online`` / ``offline``)."""
    return f"{ROOT}/{site}/{gateway}/{STATUS}"


def bridge_status(client_id: str) -> str:
    """A bridge's retained status topic (``online`` / ``offline``), by its MQTT client id."""
    return f"{ROOT}/{BRIDGE}/{escape_level(client_id)}"


def all_down(site: str = "+") -> str:
    """The filter that receives every collector's downlink of a site (all sites by default)."""
    return f"{ROOT}/{site}/+/{DOWN}"


def parse(topic: str) -> Address:
    """The site, collector and kind of a collector topic; ``TopicError`` for anything else."""
    parts = topic.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[4] not in KINDS:
        raise TopicError(f"topic {topic!r} is not {ROOT}/{{site}}/{{gateway}}/up|down|status")
    site, gateway = parts[2], parts[3]
    if not site or not gateway:
        raise TopicError(f"topic {topic!r} names no site and collector")
    return Address(site, gateway, parts[4])


def bridge_of(topic: str) -> str | None:
    """The client id a bridge's notice topic names (:func:`bridge_status` undone), else None."""
    prefix = f"{ROOT}/{BRIDGE}/"
    if not topic.startswith(prefix) or "/" in topic[len(prefix) :]:
        return None
    return unescape_level(topic[len(prefix) :])


_ESCAPED = re.compile("%(25|2F|2B|23)")


def unescape_level(level: str) -> str:
    """:func:`escape_level` undone."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), level)


# --- north: plain JSON for third parties ------------------------------------------------------


def escape_level(name: str) -> str:
    """A topic level for an id: ``/``, ``+`` and ``#`` would change the topic's meaning."""
    return name.replace("%", "%25").replace("/", "%2F").replace("+", "%2B").replace("#", "%23")


def north(site: str) -> str:
    """``gridvend/v1/{site}/north``: where a site's third-party topics live."""
    return f"{ROOT}/{escape_level(site)}/{NORTH}"


def all_north(site: str = "+") -> str:
    """The filter that receives every north topic of a site (all sites by default)."""
    return f"{ROOT}/{site}/{NORTH}/#"


def north_meter_state(site: str, meter: str) -> str:
    """A meter's retained state as the cloud holds it."""
    return f"{north(site)}/meters/{escape_level(meter)}/state"


def north_meter_readings(site: str, meter: str) -> str:
    """The readings of a meter the cloud stored."""
    return f"{north(site)}/meters/{escape_level(meter)}/readings"


def north_events(site: str) -> str:
    """Events of the site's meters and collectors."""
    return f"{north(site)}/events"


def north_sales(site: str) -> str:
    """Every money record of the site once applied or rejected."""
    return f"{north(site)}/sales"


def north_alarms(site: str) -> str:
    """Alarms raised and cleared."""
    return f"{north(site)}/alarms"


def north_gateway_status(site: str, gateway: str) -> str:
    """A collector's retained online / offline status."""
    return f"{north(site)}/gateways/{escape_level(gateway)}/status"
