"""One thread owns the store: the event loop hands it work and awaits the result.

A durable commit (``synchronous=FULL``) waits for fsync, which may take tens of milliseconds on
a collector's flash; doing that on the event loop would stall every bus task. The worker runs
store calls (and the CPU work packaged with them: rating, sealing) on one dedicated thread, in
submission order, so the store needs no locks and a bus never waits on the disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

from edge.cache.store import Store

T = TypeVar("T")


class StoreWorker:
    """Runs functions of the store on its own thread, one at a time, in order."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="gridvend-store"
        )

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the store thread and return its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Queue ``fn`` without awaiting (for callers outside the event loop)."""
        return self._pool.submit(fn, *args)

    def close(self) -> None:
        """Finish queued work, then close the store."""
        self._pool.submit(self.store.close).result()
        self._pool.shutdown(wait=True)
