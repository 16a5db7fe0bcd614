"""What the HTTP channels share: ``requests`` sessions per worker thread, timeouts, how a
transport failure maps to ``RetryLater``, templates in settings, and health from recent results.

A blocking ``requests`` call runs in a worker thread (``asyncio.to_thread``), so the loop keeps
serving the modem while a provider is slow. A connection that could not be made is a clean
retry; a timeout after the request was sent is ``uncertain`` (the provider may have sent the
text: neither Aliyun's nor Tencent's SendSms is idempotent, so the outbox records it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import requests

from cloud.notify.channels.base import (
    DEGRADED,
    DOWN,
    OK,
    Channel,
    Message,
    Progress,
    Receipt,
    options,
)
from cloud.notify.errors import ChannelDown, ChannelError, ConfigError, Rejected, RetryLater

#: consecutive retryable failures after which the channel shows as degraded
DEGRADED_AFTER = 3


class HttpChannel(Channel):
    def __init__(self, name: str, settings: Mapping[str, Any]) -> None:
        super().__init__(name)
        self.settings = options(self.OPTIONS, settings, f"channels.{name}")
        self._local = threading.local()
        self._failures = 0
        self._down_reason = ""
        self.last_error = ""
        self.counters = {"sent": 0, "retry": 0, "rejected": 0, "down": 0}

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _timeouts(self) -> tuple[float, float]:
        return self.settings["connect_timeout_ms"] / 1000, self.settings["read_timeout_ms"] / 1000

    def _post_sync(self, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        try:
            reply = self._session().post(
                url, headers=dict(headers), data=body, timeout=self._timeouts()
            )
        except requests.ConnectTimeout:
            raise RetryLater(f"{self.name}: connecting timed out", code="connect") from None
        except requests.ConnectionError as exc:
            if isinstance(exc, requests.ReadTimeout) or "Read timed out" in str(exc):
                raise RetryLater(
                    f"{self.name}: no answer in time", code="timeout", uncertain=True
                ) from None
            raise RetryLater(f"{self.name}: cannot connect: {exc}", code="connect") from None
        except requests.Timeout:
            raise RetryLater(
                f"{self.name}: no answer in time", code="timeout", uncertain=True
            ) from None
        except requests.RequestException as exc:
            raise RetryLater(f"{self.name}: {exc}", code="http", uncertain=True) from None
        return reply.status_code, reply.content

    async def send(self, message: Message, progress: Progress | None = None) -> Receipt:
        try:
            receipt = await self._send(message)
        except ChannelError as exc:
            self._count(exc)
            raise
        self._failures, self._down_reason, self.last_error = 0, "", ""
        self.counters["sent"] += 1
        return receipt

    async def _send(self, message: Message) -> Receipt:
        raise NotImplementedError

    async def _post(self, url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
        return await asyncio.to_thread(self._post_sync, url, headers, body)

    def _count(self, exc: ChannelError) -> None:
        self.last_error = str(exc)
        if isinstance(exc, ChannelDown):
            self.counters["down"] += 1
            self._down_reason = str(exc)
        elif isinstance(exc, Rejected):
            self.counters["rejected"] += 1
        else:
            self.counters["retry"] += 1
            self._failures += 1

    def health(self) -> dict[str, Any]:
        if self._down_reason:
            state, reason = DOWN, self._down_reason
        elif self._failures >= DEGRADED_AFTER:
            state, reason = DEGRADED, f"{self._failures} failed sends in a row: {self.last_error}"
        else:
            state, reason = OK, self.last_error and f"last error: {self.last_error}"
        return {
            "channel": self.name,
            "kind": self.kind,
            "state": state,
            "reason": reason,
            "dead": state == DOWN,
            "counters": dict(self.counters),
        }


def parse_templates(value: Mapping[str, Any], where: str) -> dict[str, tuple[str, list[str]]]:
    """``{name: "CODE"}`` or ``{name: {"code": "CODE", "params": ["unit", "balance"]}}`` →
    ``{name: (code, params)}`` (an empty params list sends every parameter, by name)."""
    out: dict[str, tuple[str, list[str]]] = {}
    for name, spec in value.items():
        key = f"{where}.templates.{name}"
        if isinstance(spec, str) and spec:
            out[name] = (spec, [])
            continue
        if not isinstance(spec, Mapping) or not isinstance(spec.get("code"), str):
            raise ConfigError(f"{key} must be a template code or {{code, params}}", key)
        unknown = sorted(set(spec) - {"code", "params"})
        if unknown:
            raise ConfigError(f"unknown setting {key}.{unknown[0]}", f"{key}.{unknown[0]}")
        params = spec.get("params", [])
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            raise ConfigError(f"{key}.params must be a list of parameter names", f"{key}.params")
        out[name] = (spec["code"], list(params))
    return out


def template_for(
    templates: Mapping[str, tuple[str, list[str]]], message: Message, channel: str
) -> tuple[str, list[tuple[str, str]]]:
    """The approved template code and the (name, value) parameters it takes, in order."""
    if message.template not in templates:
        raise Rejected(
            f"{channel}: no approved template for {message.template!r}", code="no_template"
        )
    code, names = templates[message.template]
    if not names:
        return code, [(k, str(v)) for k, v in message.params.items()]
    missing = [n for n in names if n not in message.params]
    if missing:
        raise Rejected(f"{channel}: template {code} needs {', '.join(missing)}", code="params")
    return code, [(n, str(message.params[n])) for n in names]
