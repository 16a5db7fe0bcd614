"""A channel that writes each message as one JSON line to a file: for the demo, and for a
deployment that has no SMS yet (the texts are still composed, limited and recorded). A line
written is a message delivered; the file is appended to, never rewritten."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from cloud.notify.channels.base import OK, REQUIRED, Channel, Message, Progress, Receipt, options
from cloud.notify.errors import ChannelDown


class FileChannel(Channel):
    kind = "file"
    OPTIONS: ClassVar[dict[str, tuple[type | tuple[type, ...], Any]]] = {"path": (str, REQUIRED)}

    def __init__(
        self, name: str = "file", *, clock: Callable[[], float] = time.time, **settings: Any
    ) -> None:
        super().__init__(name)
        self.settings = options(self.OPTIONS, settings, f"channels.{name}")
        self.path = Path(self.settings["path"])
        self._clock = clock
        self._lock = threading.Lock()
        self.written = 0
        self.last_error = ""

    def _append(self, line: str) -> None:
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")

    async def send(self, message: Message, progress: Progress | None = None) -> Receipt:
        line = json.dumps(
            {"id": message.key, "to": message.to, "kind": message.template,
             "lang": message.lang, "text": message.text, "ts": int(self._clock())},
            ensure_ascii=False,
        )  # fmt: skip
        try:
            await asyncio.to_thread(self._append, line)
        except OSError as exc:
            self.last_error = str(exc)
            raise ChannelDown(f"{self.name}: cannot write {self.path}: {exc}", code="io") from None
        self.written += 1
        ref = f"{self.name}-{self.written}"
        return Receipt(ref, delivered=True, refs=(ref,))

    def health(self) -> dict[str, Any]:
        return {"channel": self.name, "kind": self.kind, "state": OK if not self.last_error else "down",
                "reason": self.last_error, "dead": bool(self.last_error), "path": str(self.path),
                "counters": {"sent": self.written}}  # fmt: skip
