"""Envelopes this bridge received but did not apply because another live bridge owns their
collector (docs/architecture.md, "Several bridges"). Every bridge receives every uplink, so each
keeps a short copy of the others' traffic: when an owner dies or gives a collector up, the
bridge that takes it over applies these copies at once (the ones already applied are found in
the inbox and acked again) instead of waiting for the collector's 30 s resend.

Bounded: a copy older than ``keep_s`` is dropped (the collector resends what was not acked, so
nothing is lost, only later), and at most ``max_envelopes`` are kept in all, oldest dropped
first. Touched by the worker thread only.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable

from cloud.bridge.link import Inbound


class Standby:
    """Copies of other owners' envelopes, by collector (see the module docstring)."""

    def __init__(
        self,
        keep_s: float = 20.0,
        max_envelopes: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep_s = keep_s
        self.max_envelopes = max_envelopes
        self.clock = clock
        self._by_gateway: dict[str, collections.deque[Inbound]] = {}
        self._order: collections.deque[tuple[float, str]] = collections.deque()
        self.size = 0
        self.dropped = 0
        self._tried: dict[str, float] = {}  # collector -> when its copies were last retried

    def keep(self, gateway: str, item: Inbound) -> None:
        """Hold a copy of ``item`` (received for ``gateway``, owned elsewhere)."""
        self._by_gateway.setdefault(gateway, collections.deque()).append(item)
        self._order.append((item.received, gateway))
        self.size += 1
        self.expire()

    def expire(self) -> None:
        """Drop copies past ``keep_s`` or beyond ``max_envelopes``, oldest first."""
        horizon = self.clock() - self.keep_s
        while self._order and (self._order[0][0] < horizon or self.size > self.max_envelopes):
            # The index is in arrival order, as each collector's queue is.
            received, gateway = self._order.popleft()
            queue = self._by_gateway.get(gateway)
            if not queue or queue[0].received > received:
                continue  # taken already (the index entry is stale)
            queue.popleft()
            self.size -= 1
            self.dropped += 1
            if not queue:
                del self._by_gateway[gateway]

    def gateways(self) -> list[str]:
        """Collectors with copies held."""
        return list(self._by_gateway)

    def waiting(self, older_than_s: float) -> list[str]:
        """Collectors whose oldest copy has waited longer than ``older_than_s``: nobody seems to
        be applying them (their preferred bridge may have subscribed after they were sent)."""
        now = self.clock()
        horizon = now - older_than_s
        out = [
            gw
            for gw, q in self._by_gateway.items()
            if q and q[0].received < horizon and self._tried.get(gw, 0.0) < horizon
        ]
        for gw in out:
            self._tried[gw] = now  # tried at most once per ``older_than_s``
        if len(self._tried) > 4 * len(self._by_gateway) + 1000:
            self._tried = {gw: t for gw, t in self._tried.items() if gw in self._by_gateway}
        return out

    def take(self, gateways: Iterable[str]) -> list[Inbound]:
        """Remove and return every copy held for these collectors, in arrival order per
        collector (the caller applies them in sequence order anyway)."""
        out: list[Inbound] = []
        for gw in gateways:
            queue = self._by_gateway.pop(gw, None)
            if queue:
                out.extend(queue)
                self.size -= len(queue)
        # Their index entries stay until they age out; expire() skips them.
        return out
