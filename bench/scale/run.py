"""`gridvend bench scale`: thousands of virtual collectors against N bridges on one PostgreSQL over
a clustered broker (issue 15; docs/benchmarks.md "scale").

One run, in order:

1. A private broker (a 3-node ``nats-server`` cluster on loopback, or one Mosquitto with
   ``--broker mosquitto``) and a fresh PostgreSQL database with ``--collectors`` collectors of
   ``--meters`` meters seeded.
2. The anchor: PostgreSQL's raw insert rate of the same reading rows (``bench.scale.anchor``).
3. ``--processes`` load processes start the virtual collectors (``bench.scale.load``); the first
   bridge starts; every collector's ``hello`` is answered; the vend round trip is measured on the
   quiet system (``--vend-quiet`` sales, one at a time).
4. For each bridge count of ``--bridges`` (default 1, 2, 4): the readings flow for
   ``--backlog-s`` seconds with no bridge running (the broker queues them for exactly that many
   bridge sessions), then stop; that many bridges start, and the rate at which they commit
   the backlog (reading rows, the collectors' resends held off) is their ingest capacity,
   compared with the raw insert rate. CPU per part over the drain says which limit was hit.
   Then ``--minutes`` of the steady load on the best count (every collector one envelope of 32
   readings every ``--report-s``): publish→ack latency (the ack leaves a bridge after the
   commit, so this bounds publish→committed from above; the first ``--warmup-s``, fresh
   bridges claiming their collectors, reported apart, and a timeline per 10 s), a sale every
   few seconds for the loaded vend round trip, one bridge killed with SIGKILL a third of the way in (started again
   5 s later), one broker node killed two thirds in (started again 20 s later). It ends early
   when the backlog passes ``--max-backlog-s`` of offered load: not held.
5. The readings stop; everything in flight drains; the checks (``bench.scale.check``): every
   reading once, every meter's totals equal to its collector's, the ledger identity on every
   meter, no envelope or command left in flight.

Targets (exit status 1 when one is missed, or a check fails): the steady load held (acked
readings/s ≥ 98 % of offered) with p99 publish→ack ≤ 2 s after the warm-up; 2 bridges ≥ 1.6 ×
1 bridge in ingest capacity.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg

from bench.brokers import NatsCluster, free_port, wait_port
from bench.cloud import mosquitto
from bench.scale import anchor, check, cpu, procs, seed, vend
from cloud.db import Database

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _line(name: str, value: Any) -> None:
    print(f"{name}: {value}", flush=True)


@contextlib.contextmanager
def _database(keep: bool) -> Iterator[str]:
    name = f"gv_scale_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        if keep:
            _line("database_kept", name)
        else:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _broker(kind: str) -> Iterator[tuple[list[str], Any]]:
    """``(node URLs, cluster or None)``."""
    if kind == "nats":
        with NatsCluster(3) as cluster:
            yield cluster.urls, cluster
    else:
        with mosquitto() as port:
            yield [f"mqtt://127.0.0.1:{port}"], None


def _timeline(samples: list[tuple[float, list[float]]], step_s: float) -> str:
    """Per ``step_s`` of the steady run: the acks that came then and their p99 latency, so a
    kill's effect shows where it happened ("60 s: 3,120 acks p99 4.1 s")."""
    buckets: dict[int, list[float]] = {}
    for elapsed, lat in samples:
        buckets.setdefault(int(elapsed // step_s), []).extend(lat)
    return "; ".join(
        f"{k * step_s:.0f} s: {len(v)} p99 {_pct(v, 0.99):.1f}" for k, v in sorted(buckets.items())
    )


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


class Run:
    """The state of one benchmark run (see the module docstring)."""

    def __init__(self, args: argparse.Namespace, url: str, urls: list[str], cluster: Any) -> None:
        self.args = args
        self.url = url
        self.urls = urls
        self.cluster = cluster
        self.db = Database(url)
        self.status = 0
        self.workers: list[procs.LoadWorker] = []
        self.bridges: list[procs.BridgeProcess] = []
        self.server: procs.Server | None = None
        self.prober: vend.Prober | None = None
        self.offered_per_s = args.collectors * args.meters / args.report_s
        self.results: dict[str, Any] = {}

    # --- set-up -----------------------------------------------------------------------------

    def setup(self) -> list[seed.Collector]:
        a = self.args
        self.db.upgrade()
        park = seed.plan(a.collectors, a.processes * a.wires, a.meters)
        t0 = time.perf_counter()
        seed.seed(self.db, park)
        _line("seed_s", f"{time.perf_counter() - t0:.1f}")
        sample = anchor.rows([(c.gateway, c.meters) for c in park], a.anchor_rows, 1)
        raw = anchor.measure(self.db, self.url, sample)
        self.results["raw"] = max(raw.values())
        _line("raw_insert_multirow_rows_per_s", round(raw["multirow"]))
        _line("raw_insert_copy_rows_per_s", round(raw["copy"]))
        return park

    def start_load(self, park: list[seed.Collector]) -> None:
        a = self.args
        # Collectors on the first nodes, bridges on the last ones (docs/benchmarks.md "scale").
        collector_nodes = self.urls[: max(1, len(self.urls) - 1)]
        by_process: list[list[dict[str, Any]]] = [[] for _ in range(a.processes)]
        for c in park:
            site_index = int(c.site.rsplit("-", 1)[1])
            by_process[site_index % a.processes].append(
                {"site": c.site, "gateway": c.gateway, "key_hex": c.key_hex, "meters": c.meters}
            )
        for p, specs in enumerate(by_process):
            order = (
                collector_nodes[p % len(collector_nodes) :]
                + collector_nodes[: p % len(collector_nodes)]
            )
            rest = [u for u in self.urls if u not in order]
            options = {"urls": order + rest, "report_s": a.report_s, "ack_timeout_s": 30.0}
            self.workers.append(procs.LoadWorker(f"load{p}", specs, options))
        procs.wait_until(
            lambda: all((r := w.call("ready"))["connected"] == r["wires"] for w in self.workers),
            120,
            "the load processes did not connect",
        )

    def _bridge(self, k: int) -> procs.BridgeProcess:
        while len(self.bridges) <= k:
            n = len(self.bridges)
            nodes = list(reversed(self.urls))
            order = nodes[n % len(nodes) :] + nodes[: n % len(nodes)]
            extra = ["--lost-contact-every", "3600", "--archive-every", "86400"]
            self.bridges.append(
                procs.BridgeProcess(f"bench-bridge-{n + 1}", self.url, order, extra)
            )
        return self.bridges[k]

    def stats(self) -> dict[str, Any]:
        total: dict[str, Any] = {"latencies": []}
        for w in self.workers:
            part = w.call("stats")
            total["latencies"].extend(part.pop("latencies"))
            for k, v in part.items():
                total[k] = total.get(k, 0) + v
        return total

    def open_commands(self) -> int:
        with psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://")) as c:
            row = c.execute("SELECT count(*) FROM commands WHERE status IN ('pending','sent')")
            return int(row.fetchone()[0])  # type: ignore[index]

    # --- phases -----------------------------------------------------------------------------

    def warm_up(self, park: list[seed.Collector]) -> None:
        """One bridge answers every hello (a time command each) and opens the vend account."""
        bridge = self._bridge(0)
        bridge.start()
        bridge.wait_connected()
        token = vend.prepare(self.db, park[0].meters[0])
        port = free_port()
        self.server = procs.Server(self.url, port)
        wait_port(port, 30)
        self.prober = vend.Prober(self.url, port, token, park[0].meters[0])
        procs.wait_until(lambda: self.open_commands() == 0, 600, "commands still open", 2)
        quiet = [t for _ in range(self.args.vend_quiet) if (t := self.prober.once()) is not None]
        self.results["vend_quiet"] = quiet
        _line("vend_rtt_quiet_p50_ms", f"{_pct(quiet, 0.5) * 1000:.1f}")
        _line("vend_rtt_quiet_p99_ms", f"{_pct(quiet, 0.99) * 1000:.1f}")
        bridge.stop()

    def committed(self) -> int:
        """Reading rows committed so far (the readings id sequence: cheap on millions of rows;
        rows are only ever inserted here)."""
        with psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://")) as c:
            row = c.execute("SELECT coalesce(max(id), 0) FROM readings").fetchone()
            return int(row[0]) if row else 0

    def _pids(self, count: int) -> dict[str, list[int]]:
        pids = {"load": [w.proc.pid for w in self.workers if w.proc.pid is not None]}
        if self.cluster is not None:
            pids["broker"] = [n.proc.pid for n in self.cluster.nodes if n.proc is not None]
        pids["bridges"] = [b.proc.pid for b in self.bridges[:count] if b.proc is not None]
        return pids

    def capacity(self, count: int) -> None:
        """Ingest capacity of ``count`` bridges: a backlog made with no bridge running (the
        broker queues it), then the time they take to commit it, the load stopped meanwhile and
        the collectors' resends held off, so only the backlog is measured."""
        a = self.args
        # Each of these bridges' broker sessions must exist before the backlog is made (a
        # session subscribed later never gets it), and no other bridge's should.
        for idle in self.bridges[count:]:
            procs.forget_session(idle.broker_urls[0], idle.name)
        for k in range(count):
            self._bridge(k).start()
        for k in range(count):
            self._bridge(k).wait_connected()
        for bridge in self.bridges[:count]:
            bridge.stop()
        self._ack_timeout(3600.0)
        self._load(True)
        time.sleep(a.backlog_s)
        self._load(False)
        time.sleep(1.0)
        backlog = (s := self.stats())["readings"] - s["readings_acked"]
        first = self.committed()
        for k in range(count):
            self._bridge(k).start()
        for k in range(count):
            self._bridge(k).wait_connected()
        pids = self._pids(count)
        cpu0 = cpu.snapshot(pids)
        t0 = time.monotonic()
        t_first: float | None = None
        t_last: float | None = None
        last = first
        while time.monotonic() - t0 < a.drain_timeout_s:
            time.sleep(0.5)
            now = self.committed()
            if now > last:
                t_first = t_first or time.monotonic()
                t_last, last = time.monotonic(), now
            if self.stats()["inflight"] == 0:
                break
        cpu_wall = time.monotonic() - t0
        cpu1 = cpu.snapshot(pids)
        # From the first commit seen to the last, plus one poll (the first came within it).
        wall = (t_last or time.monotonic()) - (t_first or t0) + 0.5
        rate = (last - first) / wall
        self.results[f"capacity_{count}"] = rate
        _line(f"bridges_{count}_backlog_readings", backlog)
        _line(f"bridges_{count}_drain_s", f"{wall:.1f}")
        _line(f"bridges_{count}_ingest_readings_per_s", round(rate))
        _line(f"bridges_{count}_over_raw_insert", f"{rate / self.results['raw']:.2f}")
        shares = cpu.shares(cpu0, cpu1, cpu_wall)
        _line(f"bridges_{count}_cpu_cores_during_drain", json.dumps(shares))
        for bridge in self.bridges[:count]:
            bridge.stop()
        self._ack_timeout(30.0)

    def _load(self, on: bool) -> None:
        for w in self.workers:
            w.call("load", on=on)

    def _ack_timeout(self, seconds: float) -> None:
        for w in self.workers:
            w.call("ack_timeout", s=seconds)

    def steady(self, count: int) -> None:
        """``--minutes`` of the offered load on ``count`` bridges, with the kills. Ends early
        when the backlog passes ``--max-backlog-s`` of offered load: not held, and going on
        would only pile up resends."""
        a = self.args
        window_s = a.minutes * 60
        for k in range(count):
            self._bridge(k).start()
        for k in range(count):
            self._bridge(k).wait_connected()
        self._load(True)
        first = self.stats()
        start = time.monotonic()
        loaded: list[float] = []
        done = threading.Event()

        def probe() -> None:
            assert self.prober is not None
            while not done.wait(3.0):
                rtt = self.prober.once()
                if rtt is not None:
                    loaded.append(rtt)

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        timeline: list[tuple[float, list[float]]] = []  # (elapsed s, the acks' latencies then)
        part = first
        killed_bridge = killed_node = False
        while (elapsed := time.monotonic() - start) < window_s:
            time.sleep(1.0)
            if not a.no_kills and not killed_bridge and elapsed >= window_s / 3:
                killed_bridge = True
                victim = self.bridges[count - 1]
                victim.kill()
                _line(f"bridges_{count}_killed", f"{victim.name} at {elapsed:.0f} s")
                time.sleep(5)
                victim.start()
            if (
                not a.no_kills
                and self.cluster is not None
                and not killed_node
                and elapsed >= 2 * window_s / 3
            ):
                killed_node = True
                node = a.kill_node
                self.cluster.kill(node)
                _line(f"bridges_{count}_broker_node_killed", f"n{node + 1} at {elapsed:.0f} s")
                time.sleep(20)
                self.cluster.restart(node)
            part = self.stats()
            timeline.append((elapsed, part["latencies"]))
            behind = part["readings"] - part["readings_acked"]
            if behind > a.max_backlog_s * self.offered_per_s:
                _line(
                    f"bridges_{count}_steady_stopped",
                    f"at {elapsed:.0f} s: {behind} readings behind (> {a.max_backlog_s:.0f} s)",
                )
                break
        wall = time.monotonic() - start
        acked = part["readings_acked"] - first["readings_acked"]
        done.set()
        prober.join(130)
        rate = acked / wall
        # The first --warmup-s are the fresh bridges' start (each claims every collector it
        # prefers at its first envelope, its caches cold): reported, not held to the target.
        warm = [x for t, lat in timeline if t >= a.warmup_s for x in lat]
        cold = [x for t, lat in timeline if t < a.warmup_s for x in lat]
        p99 = _pct(warm, 0.99)
        held = rate >= 0.98 * self.offered_per_s
        _line(
            f"bridges_{count}_steady_readings_per_s",
            f"{rate:.0f} (offered {self.offered_per_s:.0f})",
        )
        _line(f"bridges_{count}_publish_to_ack_p50_s", f"{_pct(warm, 0.5):.3f}")
        _line(
            f"bridges_{count}_publish_to_ack_p99_s",
            f"{p99:.3f} (target <= 2; after the first {a.warmup_s:.0f} s)",
        )
        _line(f"bridges_{count}_publish_to_ack_max_s", f"{max(warm, default=0):.3f}")
        _line(
            f"bridges_{count}_publish_to_ack_p99_whole_run_s",
            f"{_pct(warm + cold, 0.99):.3f} (the first {a.warmup_s:.0f} s alone: "
            f"{_pct(cold, 0.99):.3f})",
        )
        _line(f"bridges_{count}_timeline", _timeline(timeline, 10.0))
        quiet = self.results["vend_quiet"]
        if loaded and quiet:
            ratio = _pct(loaded, 0.99) / _pct(quiet, 0.99)
            _line(f"bridges_{count}_vend_rtt_loaded_p99_ms", f"{_pct(loaded, 0.99) * 1000:.1f}")
            _line(f"bridges_{count}_vend_rtt_loaded_over_quiet_p99", f"{ratio:.1f}")
        if not held or not p99 <= 2.0:
            self.status = 1
        self._load(False)

    def finish(self, count: int) -> None:
        """Everything in flight drains on the steady run's bridges; then the checks."""
        self._load(False)
        for k in range(count):
            if not self._bridge(k).running:
                self._bridge(k).start()
        procs.wait_until(
            lambda: self.stats()["inflight"] == 0 and self.open_commands() == 0,
            self.args.drain_timeout_s,
            "envelopes or commands still in flight",
            2,
        )
        for bridge in self.bridges[:count]:
            bridge.stop()
        totals: list[dict[str, Any]] = []
        for w in self.workers:
            totals.extend(w.call("totals", 300)["totals"])
        report = check.verify(self.db, totals)
        _line("readings_generated", report["readings_generated"])
        _line("readings_in_database", report["readings_in_database"])
        for name, n in report["counts"].items():
            _line(f"check_{name}", n)
        for name, examples in report["examples"].items():
            _line(f"check_{name}_examples", "; ".join(examples))
        if any(report["counts"].values()):
            self.status = 1
        for b in self.bridges:
            if b.errors:
                _line(f"{b.name}_errors", f"{len(b.errors)} (first: {b.errors[0]})")

    def close(self) -> None:
        for b in self.bridges:
            b.stop()
        for w in self.workers:
            w.stop()
        if self.prober is not None:
            self.prober.close()
        if self.server is not None:
            self.server.stop()
        self.db.dispose()


def _stop_on_term(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str]) -> int:
    # SIGTERM unwinds like Ctrl-C, so the bridges, brokers and database are cleaned up.
    signal.signal(signal.SIGTERM, _stop_on_term)
    parser = argparse.ArgumentParser(prog="gridvend bench scale", description=__doc__)
    parser.add_argument("--collectors", type=int, default=10_000)
    parser.add_argument("--meters", type=int, default=32)
    parser.add_argument("--report-s", type=float, default=30.0)
    parser.add_argument("--minutes", type=float, default=5.0, help="steady load per bridge count")
    parser.add_argument("--bridges", default="1,2,4", help="bridge counts, in order")
    parser.add_argument("--broker", choices=["nats", "mosquitto"], default="nats")
    parser.add_argument("--processes", type=int, default=2, help="load processes")
    parser.add_argument("--wires", type=int, default=8, help="MQTT connections per load process")
    parser.add_argument("--backlog-s", type=float, default=20.0, help="load per capacity run")
    parser.add_argument(
        "--steady-bridges", type=int, default=0, help="bridges of the steady run (default: best)"
    )
    parser.add_argument("--max-backlog-s", type=float, default=60.0)
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=15.0,
        help="the steady run's start, reported apart from its p99 target",
    )
    parser.add_argument("--drain-timeout-s", type=float, default=900.0)
    parser.add_argument("--anchor-rows", type=int, default=320_000)
    parser.add_argument("--vend-quiet", type=int, default=20)
    parser.add_argument("--kill-node", type=int, default=1, help="broker node killed (0-based)")
    parser.add_argument("--no-kills", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.bridges.split(",") if x]
    _line("collectors", args.collectors)
    _line("offered_readings_per_s", round(args.collectors * args.meters / args.report_s))
    with _database(args.keep) as url, _broker(args.broker) as (urls, cluster):
        run = Run(args, url, urls, cluster)
        try:
            park = run.setup()
            run.start_load(park)
            run.warm_up(park)
            for count in counts:
                run.capacity(count)
            if 1 in counts and 2 in counts:
                ratio = run.results["capacity_2"] / run.results["capacity_1"]
                _line("two_bridges_over_one", f"{ratio:.2f} (target >= 1.6)")
                if ratio < 1.6:
                    run.status = 1
            best = args.steady_bridges or max(counts, key=lambda c: run.results[f"capacity_{c}"])
            _line("steady_bridges", best)
            for idle in run.bridges[best:]:
                procs.forget_session(idle.broker_urls[0], idle.name)
            run.steady(best)
            run.finish(best)
        finally:
            run.close()
    return run.status
