"""The clustered broker under the whole system: 3 nats-server nodes (bench/brokers.py), two
bridges on one PostgreSQL connected to different nodes, virtual collectors on others; one node
(the one carrying half the collectors and one bridge) is killed with SIGKILL mid-run and comes
back 10 s later. Afterwards every reading is in the database exactly once, every meter's totals
equal its collector's and its ledger identity holds, and nothing is left in flight. Bounded to
a couple of minutes: 30 collectors, a reading per meter every second."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bench.brokers import NatsCluster
from bench.scale import check, procs
from cloud.db import Database
from tests.scale.conftest import seeded

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def cluster() -> Iterator[NatsCluster]:
    with NatsCluster(3) as c:
        yield c


def test_a_broker_node_killed_mid_run_loses_nothing(pg: Database, cluster: NatsCluster) -> None:
    park = seeded(pg, 30)
    url = str(pg.engine.url.render_as_string(hide_password=False))
    n1, n2, n3 = cluster.urls
    specs = [
        {"site": c.site, "gateway": c.gateway, "key_hex": c.key_hex, "meters": c.meters}
        for c in park
    ]
    # Two sites, so two connections: the first on n1, the second on n2 (each fails over).
    worker = procs.LoadWorker(
        "cluster-load", specs, {"urls": [n1, n2, n3], "report_s": 1.0, "ack_timeout_s": 5.0}
    )
    bridges = [
        procs.BridgeProcess("cluster-bridge-1", url, [n3, n2, n1], []),
        procs.BridgeProcess("cluster-bridge-2", url, [n2, n3, n1], []),
    ]
    try:
        procs.wait_until(
            lambda: (r := worker.call("ready"))["connected"] == r["wires"], 60, "collectors"
        )
        for b in bridges:
            b.start()
        for b in bridges:
            b.wait_connected(60)
        worker.call("load", on=True)
        time.sleep(8)
        cluster.kill(1)  # n2: one collector connection and one bridge lose their node
        time.sleep(10)
        cluster.restart(1)
        time.sleep(6)
        worker.call("load", on=False)
        procs.wait_until(lambda: worker.call("stats")["inflight"] == 0, 150, "acks for everything")
        stats = worker.call("stats")
        assert stats["reconnects"] >= 1  # the collectors on n2 did fail over
        assert all(b.running for b in bridges)
        assert sum(b.events.get("broker_connected", 0) for b in bridges) >= 3  # one came back
        report = check.verify(pg, worker.call("totals")["totals"])
        assert report["counts"] == dict.fromkeys(report["counts"], 0), report["examples"]
        assert report["readings_in_database"] == report["readings_generated"] > 1000
    finally:
        for b in bridges:
            b.stop()
        worker.stop()
