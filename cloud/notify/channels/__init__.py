"""The channels a notification can leave by, behind one interface (``base.Channel``): a GSM
modem, Aliyun SMS, Tencent Cloud SMS, a signed webhook, and a file of JSON lines (the demo). ``build(kind, name, settings)``
makes one from its settings (unknown keys are a ``ConfigError`` naming the key)."""

from __future__ import annotations

from typing import Any

from cloud.notify.channels.aliyun import AliyunSms
from cloud.notify.channels.base import Channel
from cloud.notify.channels.file import FileChannel
from cloud.notify.channels.modem import GsmModem
from cloud.notify.channels.tencent import TencentSms
from cloud.notify.channels.webhook import Webhook
from cloud.notify.errors import ConfigError

KINDS: dict[str, type[Channel]] = {
    "modem": GsmModem,
    "aliyun": AliyunSms,
    "tencent": TencentSms,
    "webhook": Webhook,
    "file": FileChannel,
}


def build(kind: str, name: str, settings: dict[str, Any], **extra: Any) -> Channel:
    """A channel of ``kind`` called ``name``; ``extra`` goes to its constructor (a clock, the
    modem's state callback)."""
    if kind not in KINDS:
        raise ConfigError(
            f"channels.{name}.kind {kind!r} is not one of {', '.join(KINDS)}",
            f"channels.{name}.kind",
        )
    return KINDS[kind](name, **extra, **settings)
