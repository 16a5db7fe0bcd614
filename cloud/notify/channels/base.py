"""The one interface every channel keeps (GSM modem, Aliyun SMS, Tencent Cloud SMS, webhook).

A channel takes one ``Message`` at a time through ``send`` and answers with a ``Receipt`` or
raises a ``ChannelError`` (``cloud.notify.errors``). What a receipt means differs, and says so:
``accepted`` (the modem or the provider took it; a delivery report may follow, matched on
``refs``) or ``delivered`` (the far end confirmed it, as a webhook's 2xx does). Delivery
reports arrive through the callback given to ``on_report``. ``health()`` is JSON for the office
board: ``state`` is ``ok``, ``degraded`` (working, with a problem worth seeing), ``recovering``
or ``down``.

Channels are asyncio objects: ``start`` before the first send, ``close`` at the end. A channel
that talks HTTP runs its blocking calls in worker threads; the modem owns its port in the loop.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cloud.notify.errors import ConfigError

OK, DEGRADED, RECOVERING, DOWN = "ok", "degraded", "recovering", "down"


@dataclass(frozen=True)
class Message:
    """One text to one number. ``key`` is the sender's idempotency key (the outbox row), sent to
    providers that keep one (Aliyun ``OutId``, Tencent ``SessionContext``, the webhook ``id``).
    ``text`` is the rendered text (modem, webhook); cloud providers send ``template`` with
    ``params`` instead, mapped to their approved template codes in the channel's settings."""

    key: str
    to: str
    text: str
    template: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    lang: str = "zh_CN"
    concat_ref: int | None = None
    done_parts: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    """``provider_id``: the provider's id (``BizId``, ``SerialNo``) or, for the modem, the
    message references joined by commas; ``refs`` the ids delivery reports will carry."""

    provider_id: str
    parts: int = 1
    delivered: bool = False
    refs: tuple[str, ...] = ()
    concat_ref: int | None = None


@dataclass(frozen=True)
class DeliveryReport:
    """``outcome``: ``delivered``, ``pending`` (the network still tries) or ``failed``."""

    channel: str
    ref: str
    outcome: str
    status: str
    ts: int
    recipient: str = ""


ReportCallback = Callable[[DeliveryReport], Any]
#: ``await progress(seq, ref, concat_ref)``: a segment of a long message has its reference and
#: more segments follow; the sender records it before the next one goes (a crash then resends
#: only the segments without a reference)
Progress = Callable[[int, str, int | None], Awaitable[Any]]


class Channel(abc.ABC):
    #: the registry name (``modem``, ``aliyun``, ``tencent``, ``webhook``)
    kind: ClassVar[str] = ""
    #: option name -> (type, default); a default of ``REQUIRED`` must be given
    OPTIONS: ClassVar[dict[str, tuple[type | tuple[type, ...], Any]]] = {}

    def __init__(self, name: str) -> None:
        self.name = name
        self._report_cb: ReportCallback | None = None

    def on_report(self, callback: ReportCallback | None) -> None:
        self._report_cb = callback

    def _report(self, report: DeliveryReport) -> None:
        if self._report_cb is not None:
            self._report_cb(report)

    async def start(self) -> None:  # noqa: B027 (a channel with nothing to start)
        """Open what the channel needs; a channel that cannot start says so in ``health``."""

    @abc.abstractmethod
    async def send(self, message: Message, progress: Progress | None = None) -> Receipt: ...

    @abc.abstractmethod
    def health(self) -> dict[str, Any]: ...

    async def close(self) -> None:  # noqa: B027
        """Release the port or the HTTP sessions."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


def options(
    spec: Mapping[str, tuple[type | tuple[type, ...], Any]], given: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """``given`` checked against ``spec`` (style.md 8): unknown keys, missing required keys and
    wrong types are a ``ConfigError`` naming ``where.key``; defaults fill the rest."""
    unknown = sorted(set(given) - set(spec))
    if unknown:
        raise ConfigError(
            f"unknown setting {where}.{unknown[0]}; known: {', '.join(sorted(spec))}",
            f"{where}.{unknown[0]}",
        )
    out: dict[str, Any] = {}
    for key, (kind, default) in spec.items():
        if key not in given:
            if default is REQUIRED:
                raise ConfigError(f"setting {where}.{key} is required", f"{where}.{key}")
            out[key] = default
            continue
        value = given[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a number setting must not take true/false.
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(
                f"setting {where}.{key} must be {names}, not {value!r}", f"{where}.{key}"
            )
        out[key] = value
    return out
