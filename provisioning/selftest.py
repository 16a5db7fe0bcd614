"""``gridvend provision selftest --config edge.toml``: the check a field engineer runs on site,
with the agent stopped, before leaving: every bus opens, every meter answers with plausible
values and a clock close enough (``edge.fieldcheck``, the same checks as ``hil/``), the broker
accepts the collector's credentials (and, over TLS, its certificate checks out against the CA
in the bundle), and the cloud acknowledges a sealed ping under the collector's key; with
``--relay METER`` one meter's relay is tripped and closed again.

One ``PASS``/``FAIL`` line per check, exit status 1 on any FAIL. The ping is a heartbeat
(``hb``) sealed under the key file with a sequence number reserved in the collector's store,
published on the collector's ``up`` topic from a connection of its own (client id
``<gateway>-selftest``, clean session, no last will: the agent's session and status are left
alone); the bridge applies it like any heartbeat and acks it on ``down``. Silence means the
bridge is not running or the cloud holds another key for this collector: a bridge never
answers an envelope it cannot open, so the two cannot be told apart from here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge import drivers
from edge.agent import StoreLocked, lock_store
from edge.cache.store import Store
from edge.config import Config, ConfigError, load, load_keyring
from edge.fieldcheck import CheckFailed, clock_drift, plausible, relay_cycle
from edge.mqtt import LinkRefused, MqttConnection
from shared import topics
from shared.codec import envelope, messages
from shared.codec.errors import EnvelopeError

PING_RESEND_S = 2.0
READ_RETRIES = 3

# paho 2.x reports an MQTT 3.1.1 CONNACK code as the MQTT 5 reason code that means the same.
V5_TO_311 = {132: 1, 133: 2, 136: 3, 134: 4, 135: 5}
# CONNACK return codes of MQTT 3.1.1 (§3.2.2.3), as an engineer needs to read them.
CONNACK = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "broker unavailable",
    4: "bad user name or password",
    5: "not authorised: the broker refused this user name and password",
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}"


class SelfTest:
    """The checks of one collector (see the module docstring)."""

    def __init__(
        self,
        cfg: Config,
        *,
        relay: str | None = None,
        max_drift_s: int = 300,
        timeout_s: float = 15.0,
        skip_cloud: bool = False,
        clock: Callable[[], float] = time.time,
        out: Callable[[str], None] = print,
    ) -> None:
        self.cfg = cfg
        self.relay = relay
        self.max_drift_s = max_drift_s
        self.timeout_s = timeout_s
        self.skip_cloud = skip_cloud
        self.clock = clock
        self.out = out
        self.results: list[Check] = []

    def _record(self, name: str, ok: bool, detail: str) -> bool:
        check = Check(name, ok, detail)
        self.results.append(check)
        self.out(check.line())
        return ok

    async def run(self) -> list[Check]:
        """Every check, in order; ``results`` holds them."""
        if self.relay is not None and self.relay not in {m.id for m in self.cfg.meters}:
            self._record(f"relay {self.relay}", False, "no such meter in edge.toml")
            return self.results
        try:
            lock = lock_store(self.cfg.store)
        except StoreLocked:
            self._record("agent stopped", False, "an agent runs on this store and owns the "
                         "buses: stop it first (systemctl stop gridvend-agent)")  # fmt: skip
            return self.results
        try:
            for bus in self.cfg.buses:
                await self._bus(bus)
            if not self.skip_cloud:
                await self._broker_and_cloud()
        finally:
            os.close(lock)
        return self.results

    # --- buses and meters ----------------------------------------------------------------

    async def _bus(self, bus: Any) -> None:
        driver = drivers.get(bus.model, **bus.driver)
        client = drivers.open_transport(
            bus.url, model=driver, baud=bus.baud, parity=bus.parity, stop_bits=bus.stop_bits
        )
        try:
            try:
                await client.link.ensure_open()
            except Exception as exc:
                self._record(f"bus {bus.name} opens", False, f"{bus.url}: {exc}")
                return
            self._record(f"bus {bus.name} opens", True, f"{bus.url} ({bus.model})")
            for meter in (m for m in self.cfg.meters if m.bus == bus.name):
                await self._meter(meter, driver, client)
        finally:
            await client.close()

    async def _meter(self, meter: Any, driver: Any, client: Any) -> None:
        address = driver.parse_address(meter.address)
        where = f"meter {meter.id} (bus {meter.bus}, address {address})"

        async def read() -> dict[str, Any]:
            # A field check can afford a few tries: a meter that misses one frame is not dead
            # (the agent's bus backs off and retries too); a dead one fails after READ_RETRIES.
            return dict(await driver.read(client, address, now=int(self.clock()),
                                          retries=READ_RETRIES))  # fmt: skip

        try:
            reading = await read()
            detail = plausible(reading, driver)
        except Exception as exc:  # no answer, CRC, an implausible value: each says which
            self._record(f"{where} answers", False, str(exc) or type(exc).__name__)
            return
        self._record(f"{where} answers", True, detail)
        try:
            self._record(f"{where} clock", True,
                         clock_drift(reading, int(self.clock()), self.max_drift_s))  # fmt: skip
        except CheckFailed as exc:
            self._record(f"{where} clock", False, str(exc))
        if self.relay == meter.id:
            try:
                detail = await relay_cycle(driver, client, address, read, self.clock)
                self._record(f"{where} relay", True, detail)
            except Exception as exc:
                self._record(f"{where} relay", False, str(exc) or type(exc).__name__)

    # --- broker and cloud --------------------------------------------------------------------

    async def _broker_and_cloud(self) -> None:
        cfg = self.cfg
        user = cfg.broker.username or "(anonymous)"
        name = f"broker accepts {user}"
        inbox: asyncio.Queue[bytes] = asyncio.Queue()
        try:
            link = MqttConnection(
                cfg.broker, f"{cfg.gateway}-selftest", None,
                on_message=lambda topic, data: inbox.put_nowait(data), on_lost=lambda: None,
            )  # fmt: skip
        except ValueError as exc:
            self._record(name, False, str(exc))
            return
        try:
            await link.connect(10.0)
        except LinkRefused as exc:
            code = int(str(exc).rsplit(" ", 1)[-1].rstrip(")")) if "CONNACK" in str(exc) else 0
            code = V5_TO_311.get(code, code)
            self._record(name, False, f"{cfg.broker.url}: CONNACK {code}, "
                         f"{CONNACK.get(code, 'refused')}; the broker's password file lacks "
                         "this collector (provision it, then `gridvend provision reload`)")  # fmt: skip
            link.drop()
            self._record("cloud acknowledges a sealed ping", False, "skipped: no broker")
            return
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self._record(name, False, f"{cfg.broker.url}: {exc or type(exc).__name__}")
            link.drop()
            self._record("cloud acknowledges a sealed ping", False, "skipped: no broker")
            return
        self._record(name, True, cfg.broker.url)
        try:
            link.subscribe(topics.down(cfg.site, cfg.gateway))
            await self._ping(link, topics.up(cfg.site, cfg.gateway), inbox)
        finally:
            await link.close()

    async def _ping(self, link: MqttConnection, up: str, inbox: asyncio.Queue[bytes]) -> None:
        name = "cloud acknowledges a sealed ping"
        try:
            ring = load_keyring(self.cfg.key_file)
        except ConfigError as exc:
            self._record(name, False, str(exc))
            return
        store = Store(self.cfg.store)
        try:
            seq = store.next_seq()  # reserved durably: the agent never seals this number again
        finally:
            store.close()
        now = self.clock()
        body = messages.body([messages.hb(int(now), 0, {}, 0)])
        await asyncio.sleep(0.2)  # let the SUBACK arrive before the ack could
        sealed = envelope.seal(ring, envelope.UP, self.cfg.gateway, seq, int(now * 1000), body)
        started = time.monotonic()
        deadline = started + self.timeout_s
        foreign = 0
        resend_at = started
        while time.monotonic() < deadline:
            if time.monotonic() >= resend_at:
                # The same bytes again (as the agent resends): a bridge that was reconnecting
                # when the first copy passed gets this one, and acks a copy it applied.
                link.publish(up, sealed)
                resend_at = time.monotonic() + PING_RESEND_S
            wait = max(0.01, min(deadline, resend_at) - time.monotonic())
            try:
                data = await asyncio.wait_for(inbox.get(), wait)
            except TimeoutError:
                continue
            try:
                opened = envelope.open_sealed(ring, data, envelope.DOWN, self.cfg.gateway)
                msgs = messages.parse_body(opened.body)
            except EnvelopeError:
                foreign += 1  # sealed under a key we do not have
                continue
            if any(m.get("t") == "ack" and seq in m.get("seqs", []) for m in msgs):
                ms = int((time.monotonic() - started) * 1000)
                self._record(name, True, f"sequence {seq} acked in {ms} ms")
                return
        hint = (
            f"{foreign} downlink envelope(s) could not be opened with this key file: the cloud "
            "holds another key for this collector"
            if foreign
            else "either the bridge is not running or the cloud holds another key for this "
            "collector (a bridge never answers an envelope it cannot open)"
        )
        self._record(name, False, f"no ack within {self.timeout_s:g} s: {hint}; import the "
                     "collector's record again or rotate its key")  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``gridvend provision selftest`` (parsed by ``provisioning.cli``)."""
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"FAIL config: {exc}", flush=True)
        return 1
    print(f"selftest of collector {cfg.gateway} (site {cfg.site}), {args.config}", flush=True)
    test = SelfTest(
        cfg, relay=args.relay, max_drift_s=args.max_drift_s, timeout_s=args.timeout_s,
        skip_cloud=args.skip_cloud, out=lambda line: print(line, flush=True),
    )  # fmt: skip
    results = asyncio.run(test.run())
    failed = sum(not r.ok for r in results)
    print(f"selftest: {len(results) - failed} passed, {failed} failed", flush=True)
    if failed:
        print("selftest: FAIL", file=sys.stderr)
    return 1 if failed else 0
