"""The database layer's own machinery (the SQLite write gate)."""

from __future__ import annotations

import threading
import time

import pytest

from cloud.db import FairRLock, head_revisions


def test_fair_write_gate_hands_the_lock_over_in_arrival_order() -> None:
    # Writers queue on the gate in the order they arrive, so none waits behind later arrivals
    # (an unfair lock lets newcomers overtake and stretches the API's tail latency).
    lock = FairRLock()
    order: list[int] = []
    lock.acquire()
    lock.acquire()  # re-entrant
    threads = []
    for n in range(8):
        t = threading.Thread(target=lambda n=n: (lock.acquire(), order.append(n), lock.release()))
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 10
        while len(lock._waiters) < n + 1:  # wait until thread n is queued before starting n+1
            assert time.monotonic() < deadline, "a waiter never queued"
            time.sleep(0.001)
    lock.release()
    lock.release()
    for t in threads:
        t.join(10)
    assert order == list(range(8))
    with pytest.raises(RuntimeError):
        lock.release()


def test_the_migrations_form_one_chain_with_one_head():
    # Engineers add migrations in parallel; two heads would make `init-db` fail on a new site.
    heads = head_revisions()
    assert len(heads) == 1, f"migration heads {heads}: chain the newer one after the other"
