"""A load process: a few thousand virtual collectors (``bench.scale.vcollector``) behind a few
MQTT connections, driven by one loop, controlled by the bench through a pipe.

Each connection carries the collectors of one site: it publishes their uplinks on their own
topics and subscribes to ``gridvend/v1/{site}/+/down`` for their acks and commands, with a
persistent session (``clean_session=False``) as a collector has. A connection that drops is
reconnected by its own thread to the next broker URL in its list (the cluster's other nodes);
once it is back, its collectors say ``online`` (retained), send ``hello`` and resend every
envelope not acked, as the agent does on every connect.

One thread (the loop) owns every collector: paho's threads only queue what arrives.

Control (``Pipe`` messages, each answered): ``{"op": "load", "on": bool}`` starts or stops the
readings; ``{"op": "stats"}`` returns counters and the publish→ack latencies since the last
call; ``{"op": "totals"}`` every collector's totals (``VirtualCollector.totals``);
``{"op": "stop"}`` disconnects and ends the process.
"""

from __future__ import annotations

import contextlib
import faulthandler
import heapq
import queue
import random
import signal
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.scale.vcollector import VirtualCollector


@dataclass
class CollectorSpec:
    """One virtual collector to build in the load process."""

    site: str
    gateway: str
    key_hex: str
    meters: list[str]


class Wire:
    """One MQTT connection for one site's collectors (see the module docstring)."""

    def __init__(self, name: str, site: str, urls: list[str], events: queue.Queue[Any]) -> None:
        self.name = name
        self.site = site
        self.urls = urls
        self.events = events
        self.up = threading.Event()
        self.url_index = 0
        self.connects = 0
        self._closing = False
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=name,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._thread = threading.Thread(target=self._keep_up, name=f"wire-{name}", daemon=True)
        self._lost = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def _on_connect(self, c: Any, u: Any, flags: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            return
        c.subscribe(f"gridvend/v1/{self.site}/+/down", qos=1)
        self.connects += 1
        self.up.set()
        self.events.put(("up", self))

    def _on_disconnect(self, c: Any, u: Any, flags: Any, rc: Any, p: Any) -> None:
        self.up.clear()
        self._lost.set()

    def _on_message(self, c: Any, u: Any, msg: Any) -> None:
        self.events.put(("down", msg.topic, bytes(msg.payload), time.monotonic()))

    def _keep_up(self) -> None:
        """Connect, and after any loss connect again, to the next URL each time."""
        while not self._closing:
            url = self.urls[self.url_index % len(self.urls)]
            parts = urlsplit(url)
            self._lost.clear()
            try:
                self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, 30)
            except OSError:
                self.url_index += 1
                time.sleep(0.5)
                continue
            self.client.loop_start()
            if not self.up.wait(10):
                self.client.loop_stop()
                self.client._reset_sockets()  # loop_start makes a new socket pair each time
                self.url_index += 1
                continue
            self._lost.wait()
            self.client.loop_stop()
            self.client._reset_sockets(sockpair_only=True)
            if not self._closing:
                self.url_index += 1
                time.sleep(random.uniform(0.2, 1.0))

    def publish(self, topic: str, data: bytes, retain: bool = False) -> None:
        if self.up.is_set():
            self.client.publish(topic, data, qos=1, retain=retain)

    def close(self) -> None:
        self._closing = True
        with contextlib.suppress(Exception):
            self.client.disconnect()
        self._lost.set()
        self._thread.join(5)
        with contextlib.suppress(Exception):
            self.client.loop_stop()


class LoadProcess:
    """The loop of one load process (see the module docstring)."""

    def __init__(
        self,
        name: str,
        specs: list[CollectorSpec],
        urls: list[str],
        *,
        report_s: float,
        ack_timeout_s: float,
    ) -> None:
        self.events: queue.Queue[Any] = queue.Queue()
        self.collectors: dict[str, VirtualCollector] = {}
        self.wire_of: dict[str, Wire] = {}
        by_site: dict[str, list[CollectorSpec]] = {}
        for spec in specs:
            by_site.setdefault(spec.site, []).append(spec)
        self.wires: list[Wire] = []
        for i, (site, members) in enumerate(sorted(by_site.items())):
            wire = Wire(
                f"{name}-{site}", site, urls[i % len(urls) :] + urls[: i % len(urls)], self.events
            )
            self.wires.append(wire)
            for spec in members:
                vc = VirtualCollector(
                    spec.site,
                    spec.gateway,
                    bytes.fromhex(spec.key_hex),
                    spec.meters,
                    report_s=report_s,
                    ack_timeout_s=ack_timeout_s,
                )
                self.collectors[spec.gateway] = vc
                self.wire_of[spec.gateway] = wire
        self.report_s = report_s
        self.load_on = False
        self._schedule: list[tuple[float, str]] = []
        self._last_resend_scan = 0.0
        self.latencies: list[float] = []
        self.skipped_reports = 0

    # --- the loop ---------------------------------------------------------------------------

    def run(self, control: Connection) -> None:
        for wire in self.wires:
            wire.start()
        try:
            while True:
                if control.poll(0):
                    request = control.recv()
                    if request["op"] == "stop":
                        control.send({"ok": True})
                        return
                    control.send(self._control(request))
                self._step(time.monotonic())
        finally:
            for wire in self.wires:
                wire.close()

    def _control(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "load":
            self._set_load(bool(request["on"]))
            return {"ok": True}
        if op == "stats":
            return self._stats()
        if op == "totals":
            return {"totals": [vc.totals() for vc in self.collectors.values()]}
        if op == "ack_timeout":
            for vc in self.collectors.values():
                vc.ack_timeout_s = float(request["s"])
            return {"ok": True}
        if op == "ready":
            return {"connected": sum(w.up.is_set() for w in self.wires), "wires": len(self.wires)}
        return {"error": f"unknown op {op!r}"}

    def _set_load(self, on: bool) -> None:
        if on and not self.load_on:
            now = time.monotonic()
            # Spread the collectors over the report interval, as a park's would be.
            self._schedule = [
                (now + random.uniform(0, self.report_s), gw) for gw in self.collectors
            ]
            heapq.heapify(self._schedule)
        self.load_on = on

    def _stats(self) -> dict[str, Any]:
        vcs = self.collectors.values()
        out = {
            "latencies": self.latencies,
            "readings": sum(v.counters.readings for v in vcs),
            "readings_acked": sum(v.counters.readings_acked for v in vcs),
            "envelopes": sum(v.counters.envelopes for v in vcs),
            "inflight": sum(len(v.inflight) for v in vcs),
            "resent": sum(v.counters.resent for v in vcs),
            "fast_resent": sum(v.counters.fast_resent for v in vcs),
            "commands": sum(v.counters.commands for v in vcs),
            "duplicate_commands": sum(v.counters.duplicate_commands for v in vcs),
            "rejected_down": sum(v.counters.rejected_down for v in vcs),
            "skipped_reports": self.skipped_reports,
            "connected": sum(w.up.is_set() for w in self.wires),
            "reconnects": sum(max(0, w.connects - 1) for w in self.wires),
        }
        self.latencies = []
        return out

    def _step(self, now: float) -> None:
        deadline = now + 0.02
        while True:
            try:
                item = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item[0] == "down":
                self._down(item[1], item[2], item[3])
            else:
                self._wire_up(item[1], time.monotonic())
            if time.monotonic() >= deadline:
                break
        now = time.monotonic()
        if self.load_on:
            while self._schedule and self._schedule[0][0] <= now:
                due, gw = heapq.heappop(self._schedule)
                vc = self.collectors[gw]
                data = vc.report(now)
                if data is None:
                    self.skipped_reports += 1
                else:
                    self.wire_of[gw].publish(vc.topic_up, data)
                heapq.heappush(self._schedule, (due + self.report_s, gw))
        if now - self._last_resend_scan >= 1.0:
            self._last_resend_scan = now
            for gw, vc in self.collectors.items():
                if vc.inflight:
                    for data in vc.due_resends(now):
                        self.wire_of[gw].publish(vc.topic_up, data)

    def _down(self, topic: str, payload: bytes, received: float) -> None:
        parts = topic.split("/")
        vc = self.collectors.get(parts[3]) if len(parts) == 5 else None
        if vc is None:
            return
        before = len(vc.counters.latencies_s)
        out = vc.on_down(payload, received)
        if len(vc.counters.latencies_s) > before:
            self.latencies.extend(vc.counters.latencies_s[before:])
            del vc.counters.latencies_s[:]
        wire = self.wire_of[vc.gateway]
        for data in out:
            wire.publish(vc.topic_up, data)

    def _wire_up(self, wire: Wire, now: float) -> None:
        """A connection is (back) up: its collectors say online, hello, and resend."""
        for gw, vc in self.collectors.items():
            if self.wire_of[gw] is not wire:
                continue
            wire.publish(vc.topic_status, b"online", retain=True)
            wire.publish(vc.topic_up, vc.hello(now))
            for data in vc.all_inflight(now):
                wire.publish(vc.topic_up, data)


def main(
    control: Connection, name: str, specs: list[dict[str, Any]], options: dict[str, Any]
) -> None:
    """Entry point of a load process (``multiprocessing`` target). SIGUSR1 prints every
    thread's stack to stderr (a stuck load process says where)."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    process = LoadProcess(
        name,
        [CollectorSpec(**s) for s in specs],
        options["urls"],
        report_s=options.get("report_s", 30.0),
        ack_timeout_s=options.get("ack_timeout_s", 30.0),
    )
    process.run(control)
