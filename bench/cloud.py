"""`gridvend bench cloud`: the cloud bridge's ingest rate and the API's sale latency.

Ingest (issue 5 target: ratio >= 0.3 on SQLite and on PostgreSQL). In one run, on one private
Mosquitto (QoS 1, loopback):

- ``raw_paho_qos1_msgs_per_s``: a paho publisher sends N reading-sized JSON messages, one MQTT
  message each, to a paho subscriber: what MQTT itself can move, per message.
- ``bridge_ingest_readings_per_s_<db>``: a paho publisher sends the same N readings as a
  collector does (sealed envelopes of ``--per-envelope`` readings, several collectors) to the
  real bridge, which opens, dedupes, applies and commits them (reading rows, ledger mirror,
  inbox), acks each envelope and republishes every reading north. Timed from the first publish
  to the commit that makes the last reading row durable.
- ``bridge_ingest_ratio_<db>`` = bridge readings/s / raw messages/s.

Sale latency (target p99 <= 100 ms on SQLite; ``bench.sales``): ``gridvend cloud serve`` on a
fresh SQLite database, 20 concurrent clients POSTing sales with idempotency keys over
keep-alive connections; latency per request as the client sees it. In the same run the same
sales in-process (Flask's test client, one at a time): ``api_over_in_process`` is the API's
sales/s over that rate, the share HTTP, WSGI and the concurrency leave, a figure that does not
move with the machine's load as milliseconds do. On PostgreSQL, meters with ``--sale-history``
applied sales each and ``--pending-elsewhere`` credits pending on other meters: the sale path
without and with the pending-credit index (0005).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from bench import sales as bench_sales
from cloud.bridge.worker import Bridge, BridgeSettings
from cloud.db import Database
from cloud.models import Reading
from cloud.park import inventory
from shared import topics
from shared.broker import Broker
from shared.codec import envelope, messages

SITE = "bench"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def mosquitto() -> Iterator[int]:
    """A private Mosquitto on a free loopback port (no persistence, large queues)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="gv-bench-mosq-"))
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 100\n"
    )
    proc = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        _wait_port(port)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def _client(name: str) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"{name}-{secrets.token_hex(4)}",
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    return client


def _connect(client: mqtt.Client, port: int) -> None:
    ready = threading.Event()
    client.on_connect = lambda *a: ready.set()
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    if not ready.wait(10):
        raise TimeoutError("could not connect to the bench broker")


def _reading(rid: int, meter: str, charges: int) -> dict[str, Any]:
    return messages.reading(
        id=rid,
        meter=meter,
        ts=1_767_225_600 + rid,
        energy_wh=1_000_000 + rid * 10,
        power_w=5230,
        relay="closed",
        band_energy_wh={"sharp": 0, "peak": rid * 4, "flat": rid * 4, "valley": rid * 2},
        voltages_dv=[2201, 2198, 2203],
        currents_ma=[7900, 8010, 7950],
        charge_micro_yuan=10,
        balance_micro_yuan=-charges,
        credits_micro_yuan=0,
        refunds_micro_yuan=0,
        charges_micro_yuan=charges,
    )


def raw_paho(port: int, count: int, payloads: list[bytes] | None = None) -> float:
    """Messages per second from a paho publisher through Mosquitto to a paho subscriber
    (``count`` reading-sized JSON messages, or the given payloads)."""
    payload = json.dumps(_reading(1, "gw0-m000", 10), separators=(",", ":")).encode()
    sent = payloads if payloads is not None else [payload] * count
    count = len(sent)
    got = 0
    done = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        nonlocal got
        got += 1
        if got >= count:
            done.set()

    sub = _client("bench-sub")
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    _connect(sub, port)
    sub.subscribe("bench/raw", qos=1)
    subscribed.wait(10)
    pub = _client("bench-pub")
    _connect(pub, port)
    start = time.perf_counter()
    for data in sent:
        pub.publish("bench/raw", data, qos=1)
    if not done.wait(300):
        raise TimeoutError(f"raw paho: only {got} of {count} messages arrived")
    elapsed = time.perf_counter() - start
    for c in (pub, sub):
        c.disconnect()
        c.loop_stop()
    return count / elapsed


def _seed(url: str, gateways: int, meters: int) -> tuple[Any, dict[str, bytes]]:
    db = Database(url)
    db.upgrade()
    keys = {f"gw{g}": secrets.token_bytes(32) for g in range(gateways)}
    with db.session() as s:
        inventory.upsert_site(s, SITE, "Bench park")
        for gw, key in keys.items():
            inventory.upsert_gateway(s, gw, SITE, key.hex())
            for m in range(meters):
                inventory.upsert_meter(s, f"{gw}-m{m:03d}", gw, "bus1", str(m + 1), "acrel")
    return db, keys


def bridge_ingest(
    port: int, url: str, readings: int, per_envelope: int, gateways: int
) -> tuple[float, float]:
    """Readings per second from MQTT to committed rows through the real bridge, and the same
    envelopes' readings per second through paho and the broker alone (a second anchor)."""

    meters = 25
    db, keys = _seed(url, gateways, meters)
    envelopes: list[tuple[str, bytes]] = []
    rid: dict[str, int] = dict.fromkeys(keys, 0)
    charges: dict[str, int] = {}
    per_gateway = readings // gateways
    for gw, key in keys.items():
        ring = envelope.Keyring({1: key}, 1)
        for seq, start in enumerate(range(0, per_gateway, per_envelope), start=1):
            batch = []
            for _ in range(min(per_envelope, per_gateway - start)):
                rid[gw] += 1
                meter = f"{gw}-m{rid[gw] % meters:03d}"
                charges[meter] = charges.get(meter, 0) + 10
                batch.append(_reading(rid[gw], meter, charges[meter]))
            data = envelope.seal(ring, envelope.UP, gw, seq, 0, messages.body(batch))
            envelopes.append((topics.up(SITE, gw), data))
    total = per_gateway * gateways
    transport = raw_paho(port, 0, [data for _, data in envelopes]) * total / len(envelopes)
    bridge = Bridge(
        db,
        BridgeSettings(
            broker=Broker(f"mqtt://127.0.0.1:{port}"),
            client_id=f"bench-bridge-{secrets.token_hex(4)}",
            lost_contact_every_s=3600,
        ),
    )
    thread = threading.Thread(target=bridge.run, daemon=True)
    thread.start()
    if not bridge.ready.wait(15):
        raise TimeoutError("the bridge did not connect")
    pub = _client("bench-collectors")
    _connect(pub, port)
    # Interleave the collectors, as they would arrive from a park.
    per = max(1, len(envelopes) // gateways)
    order = [e for _, e in sorted(enumerate(envelopes), key=lambda ie: (ie[0] % per, ie[0]))]
    start = time.perf_counter()
    for topic, data in order:
        pub.publish(topic, data, qos=1)
    deadline = time.monotonic() + 600
    while bridge.stats.readings < total:
        if time.monotonic() > deadline:
            raise TimeoutError(f"bridge: {bridge.stats.readings} of {total} readings applied")
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    bridge.stop()
    thread.join(60)
    pub.disconnect()
    pub.loop_stop()
    with db.session(readonly=True) as s:
        rows = s.scalar(select(func.count()).select_from(Reading))
    db.dispose()
    if rows != total:
        raise RuntimeError(f"bridge committed {rows} reading rows, expected {total}")
    return total / elapsed, transport


def _pg_available() -> bool:
    try:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", connect_timeout=3):
            return True
    except Exception:
        return False


@contextlib.contextmanager
def _pg_database() -> Iterator[str]:
    name = f"gv_bench_{secrets.token_hex(6)}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sale_latency(
    clients: int, sales: int, postgres: bool, history: int, pending_elsewhere: int
) -> int:
    """The API's sale path (``bench.sales``): on SQLite the p99 target and the API's sales/s
    against the in-process rate; on PostgreSQL the same with the pending-credit index (0005)
    dropped, then present, on a database whose meters each have ``history`` applied sales."""
    status = 0
    meters = clients * 2
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{os.path.join(folder, 'api.db')}"
        token = bench_sales.token()
        bench_sales.seed(url, meters, token)
        with bench_sales.serving(url) as port:
            run = bench_sales.api(port, token, meters, clients, sales, "api")
        inproc = bench_sales.in_process(url, token, meters, max(200, sales // 2), "inproc")
    _line("api_sale_clients", clients)
    _line("api_sale_requests", run.sales)
    bench_sales.report(_line, "api_sale_sqlite", run)
    _line("api_sale_p99_ms_sqlite", f"{run.p99_ms:.1f} (target <= 100)")
    bench_sales.report(_line, "in_process_sale_sqlite", inproc)
    _line("api_over_in_process_sqlite", f"{run.sales_per_s / inproc.sales_per_s:.2f}")
    if run.failures or inproc.failures or run.p99_ms > 100:
        status = 1
    if postgres:
        with _pg_database() as url:
            token = bench_sales.token()
            bench_sales.seed(url, meters, token, history, pending_elsewhere)
            runs = {}
            for present in (False, True):
                bench_sales.set_pending_indexes(url, present)
                with bench_sales.serving(url) as port:
                    tag = f"pg-{'index' if present else 'scan'}"
                    runs[present] = bench_sales.api(port, token, meters, clients, sales, tag)
            inproc = bench_sales.in_process(url, token, meters, max(200, sales // 2), "pg-in")
        _line("api_sale_postgres_history_sales_per_meter", history)
        _line("api_sale_postgres_pending_on_other_meters", pending_elsewhere)
        bench_sales.report(_line, "api_sale_postgres_without_pending_index", runs[False])
        bench_sales.report(_line, "api_sale_postgres", runs[True])
        _line(
            "api_sale_p99_postgres_index_over_scan",
            f"{runs[True].p99_ms / runs[False].p99_ms:.2f}",
        )
        bench_sales.report(_line, "in_process_sale_postgres", inproc)
        _line("api_over_in_process_postgres", f"{runs[True].sales_per_s / inproc.sales_per_s:.2f}")
        if runs[False].failures or runs[True].failures or inproc.failures:
            status = 1
    return status


def _line(name: str, value: Any) -> None:
    print(f"{name}: {value}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridvend bench cloud", description=__doc__)
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--per-envelope", type=int, default=100)
    parser.add_argument("--gateways", type=int, default=4)
    parser.add_argument("--raw-messages", type=int, default=20_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--api-clients", type=int, default=20)
    parser.add_argument("--api-sales", type=int, default=1000)
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument(
        "--sale-history", type=int, default=5000, help="applied sales per meter (PostgreSQL)"
    )
    parser.add_argument(
        "--pending-elsewhere",
        type=int,
        default=20_000,
        help="credits pending on other meters of the park (PostgreSQL)",
    )
    args = parser.parse_args(argv)
    status = 0
    with mosquitto() as port:
        raw = raw_paho(port, args.raw_messages)
        _line("raw_paho_qos1_msgs_per_s", round(raw))
        dbs: list[tuple[str, Any]] = [("sqlite", None)]
        if not args.no_postgres:
            if _pg_available():
                dbs.append(("postgres", None))
            else:
                # A target that cannot be measured is not met (use --no-postgres to leave it out).
                _line("bridge_ingest_postgres", "not measured (no PostgreSQL on 127.0.0.1:5432)")
                status = 1
        for kind, _ in dbs:
            with contextlib.ExitStack() as stack:
                if kind == "sqlite":
                    folder = stack.enter_context(tempfile.TemporaryDirectory())
                    url = f"sqlite:///{os.path.join(folder, 'bench.db')}"
                else:
                    url = stack.enter_context(_pg_database())
                rate, transport = bridge_ingest(
                    port, url, args.readings, args.per_envelope, args.gateways
                )
            ratio = rate / raw
            _line(f"bridge_ingest_readings_per_s_{kind}", round(rate))
            _line(f"bridge_ingest_ratio_{kind}", f"{ratio:.2f} (target >= 0.3)")
            _line(f"same_envelopes_raw_paho_readings_per_s_{kind}", round(transport))
            _line(f"bridge_over_same_envelopes_raw_{kind}", f"{rate / transport:.3f}")
            if ratio < 0.3:
                status = 1
    if not args.skip_api:
        postgres = not args.no_postgres and _pg_available()
        status |= sale_latency(
            args.api_clients, args.api_sales, postgres, args.sale_history, args.pending_elsewhere
        )
    return status
