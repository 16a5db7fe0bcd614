"""The clustered broker itself (3 nats-server nodes, tests/support/nats.py), before any gridvend
code rides on it: what a QoS 1 message does between nodes, and when a node dies.

What we rely on, each checked here:
- a QoS 1 publish on one node reaches a persistent-session (``clean_session=False``) subscriber
  connected to another, in order;
- the session lives in the cluster, not in a node: the subscriber reconnects to a different node
  and gets what was published while it was away. Not always in order: a message the broker handed
  to the old connection just before it closed is not acknowledged, and comes again with DUP only
  after the ack wait (30 s), behind newer ones (seen once in CI: the first of 100 came last). Order
  per collector is the sync protocol's (sequence numbers and the inbox), never the broker's;
- a node killed with SIGKILL loses nothing the broker acknowledged: its subscribers reconnect
  elsewhere and receive every PUBACKed message (at least once), and a publisher that resends what
  was not PUBACKed (as the collectors do) gets everything through.

Seen while writing this (2 cores, loopback, nats-server 2.9.10): a subscriber whose node was
killed is back on another node, session present, after 5–11 s (raft elections of the stream and
of its consumer). When the killed node led the ``$MQTT_msgs`` stream, QoS 1 publishes on the
surviving nodes went unacknowledged for seconds and some were never delivered: the broker had
not PUBACKed them, and an MQTT 3.1.1 client resends only after reconnecting. So a sender must
keep and resend what was not acknowledged end to end, as the collector's outbox does.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from tests.scale.mqttkit import Client
from tests.support.nats import NatsCluster

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def cluster() -> Iterator[NatsCluster]:
    with NatsCluster(3) as c:
        yield c


def _ids(prefix: str) -> tuple[str, str]:
    tag = secrets.token_hex(3)
    return f"{prefix}-sub-{tag}", f"{prefix}-pub-{tag}"


def test_qos1_publish_reaches_a_persistent_session_on_another_node(
    cluster: NatsCluster,
) -> None:
    sub_id, pub_id = _ids("order")
    sub = Client(sub_id, clean_session=False).connect(cluster.urls[1])
    sub.subscribe("gridvend/v1/+/+/up")
    pub = Client(pub_id, clean_session=True).connect(cluster.urls[0])
    sent = [f"m{i:05d}".encode() for i in range(400)]
    for payload in sent:
        pub.publish("gridvend/v1/s/g1/up", payload)
    assert sub.wait_for(len(sent), 60) == sent

    # The session is the cluster's: reconnect to a third node, get what came meanwhile.
    sub.close()
    later = [f"l{i:05d}".encode() for i in range(100)]
    for payload in later:
        pub.publish("gridvend/v1/s/g1/up", payload)
    sub.received.clear()
    again = Client(sub_id, clean_session=False).connect(cluster.urls[2])
    assert again.session_present is True
    got = again.wait_for(len(later), 60)
    assert set(got) == set(later), f"lost: {sorted(set(later) - set(got))[:5]}"
    # What the broker had handed to the closing connection before it saw the DISCONNECT comes
    # again with DUP after the ack wait (30 s), behind the rest; everything else is in order.
    fresh = [p for p in got if p not in again.redelivered]
    assert fresh == [p for p in later if p in fresh]
    for c in (again, pub):
        c.close()


def test_a_killed_node_loses_nothing_the_broker_acknowledged(cluster: NatsCluster) -> None:
    sub_id, pub_id = _ids("kill")
    sub = Client(sub_id, clean_session=False).connect(cluster.urls[1])
    sub.subscribe("gridvend/v1/+/+/up")
    pub = Client(pub_id, clean_session=True).connect(cluster.urls[0])
    topic = "gridvend/v1/s/g2/up"
    first = [f"a{i:05d}".encode() for i in range(200)]
    for payload in first:
        pub.publish(topic, payload)
    sub.wait_for(len(first), 60)

    # The subscriber's node dies; publishing goes on; the subscriber comes back elsewhere.
    cluster.kill(1)
    sub.drop()
    second = [f"b{i:05d}".encode() for i in range(200)]
    mids = {pub.publish(topic, p): p for p in second}
    deadline = time.monotonic() + 60
    while not set(mids) <= pub.acked and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(mids) <= pub.acked, "the surviving nodes did not acknowledge every publish"
    back = Client(sub_id, clean_session=False).connect(cluster.urls[2], timeout_s=60)
    assert back.session_present is True
    got = back.wait_for(len(second), 90)
    assert set(second) <= set(got)
    cluster.restart(1)

    # The publisher's node dies mid-stream: what was not PUBACKed is published again elsewhere.
    third = [f"c{i:05d}".encode() for i in range(300)]
    pending = {pub.publish(topic, p): p for p in third[:150]}
    cluster.kill(0)
    pub.drop()
    unacked = [p for mid, p in pending.items() if mid not in pub.acked]
    pub2 = Client(pub_id + "-2", clean_session=True).connect(cluster.urls[1], timeout_s=60)
    for payload in unacked + third[150:]:
        pub2.publish(topic, payload)
    got = back.wait_for(len(second) + len(third), 90)
    assert set(third) <= set(got), f"lost: {sorted(set(third) - set(got))[:5]}"
    cluster.restart(0)
    for c in (back, pub2):
        c.close()
