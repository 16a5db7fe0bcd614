"""A webhook for integrators: each message is POSTed as JSON, signed with HMAC-SHA256.

Body: ``{"id", "to", "text", "template", "params", "lang", "ts"}`` (``id`` is the outbox key: a
receiver that sees an id twice has seen a resend). Headers: ``X-Gridvend-Timestamp`` and
``X-Gridvend-Signature: v1=<hex>`` over ``"<timestamp>." + body`` (``signing.verify_webhook``
checks one). A 2xx means the integrator has it: the receipt says ``delivered``. 401/403 mean
our secret is wrong (``ChannelDown``); 408, 429 and 5xx are retried; other 4xx are ``Rejected``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

from cloud.notify.channels import signing
from cloud.notify.channels.base import REQUIRED, Message, Receipt
from cloud.notify.channels.http import HttpChannel
from cloud.notify.errors import ChannelDown, Rejected, RetryLater


class Webhook(HttpChannel):
    kind = "webhook"
    OPTIONS: ClassVar[dict[str, tuple[type | tuple[type, ...], Any]]] = {
        "url": (str, REQUIRED),
        "secret": (str, REQUIRED),
        "connect_timeout_ms": (int, 3000),
        "read_timeout_ms": (int, 5000),
    }

    def __init__(
        self, name: str = "webhook", *, clock: Callable[[], float] = time.time, **settings: Any
    ) -> None:
        super().__init__(name, settings)
        self._clock = clock

    def request(self, message: Message) -> tuple[str, dict[str, str], bytes]:
        ts = int(self._clock())
        body = json.dumps(
            {"id": message.key, "to": message.to, "text": message.text,
             "template": message.template, "params": dict(message.params),
             "lang": message.lang, "ts": ts},
            ensure_ascii=False, separators=(",", ":"),
        ).encode()  # fmt: skip
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Gridvend-Timestamp": str(ts),
            "X-Gridvend-Signature": signing.webhook_signature(self.settings["secret"], ts, body),
        }
        return self.settings["url"], headers, body

    async def _send(self, message: Message) -> Receipt:
        url, headers, body = self.request(message)
        status, content = await self._post(url, headers, body)
        if 200 <= status < 300:
            try:
                reply = json.loads(content) if content else {}
                ref = str(reply.get("id") or message.key)
            except (ValueError, AttributeError):
                ref = message.key
            return Receipt(ref, delivered=True, refs=(ref,))
        text = f"{self.name}: HTTP {status} from {url}"
        if status in (401, 403):
            raise ChannelDown(text + " (is the shared secret right?)", code=f"HTTP {status}")
        if status in (408, 429) or status >= 500:
            raise RetryLater(text, code=f"HTTP {status}", uncertain=status >= 500)
        raise Rejected(text, code=f"HTTP {status}")
