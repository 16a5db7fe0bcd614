"""Self-service payment (F42): the providers (sandbox, Alipay, WeChat Pay API v3), their
notifications and bills. See ``cloud.payments.provider`` for the theory of operation.

Modules: ``provider`` (the interface and its values), ``alipay``/``alipay_codec``,
``wechat``/``wechat_codec``, ``sandbox``, ``bills`` (bill-file parsers), ``signing``
(SHA256withRSA and key formats), ``amounts`` (yuan text ↔ fen ↔ micro-yuan), ``errors``,
``transport`` (injectable outbound HTTP).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cloud.errors import InvalidError
from cloud.payments.alipay import AlipayConfig, AlipayProvider
from cloud.payments.provider import Provider
from cloud.payments.sandbox import SandboxBank, SandboxProvider
from cloud.payments.transport import Transport
from cloud.payments.wechat import WechatConfig, WechatProvider

PROVIDERS = ("sandbox", "alipay", "wechat")


def make_provider(
    name: str,
    settings: Mapping[str, Any],
    transport: Transport | None = None,
    clock: Callable[[], float] | None = None,
) -> Provider:
    """A provider by name from its settings (unknown settings are an error naming the key).
    ``sandbox`` takes ``directory`` (where the sandbox bank keeps its journal, key and bills)
    and optionally ``pay_page``."""
    if name == "sandbox":
        unknown = sorted(set(settings) - {"directory", "pay_page"})
        if unknown:
            raise InvalidError(f"unknown sandbox setting {unknown[0]!r}", unknown[0])
        if not settings.get("directory"):
            raise InvalidError("the sandbox setting directory is required", "directory")
        bank = SandboxBank(settings["directory"], **({"clock": clock} if clock else {}))
        if settings.get("pay_page"):
            return SandboxProvider(bank, str(settings["pay_page"]))
        return SandboxProvider(bank)
    if name == "alipay":
        return AlipayProvider(AlipayConfig.from_mapping(settings), transport, clock)
    if name == "wechat":
        return WechatProvider(WechatConfig.from_mapping(settings), transport, clock)
    raise InvalidError(f"provider must be one of {', '.join(PROVIDERS)}; got {name!r}", "provider")
