"""The clustered broker for tests: the benchmarks' harness (``bench.brokers``), one home for how
a 3-node nats-server cluster is configured and started."""

from bench.brokers import NatsCluster, NatsNode, nats_binary

__all__ = ["NatsCluster", "NatsNode", "nats_binary"]
