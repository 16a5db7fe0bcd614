"""Tencent Cloud SMS (腾讯云短信) ``SendSms`` (sms.tencentcloudapi.com, version 2021-01-11) with
TC3-HMAC-SHA256 signed requests.

The JSON body names ``PhoneNumberSet`` (E.164), ``SmsSdkAppId``, ``SignName``, ``TemplateId``
(from the ``templates`` setting), ``TemplateParamSet`` (the template's variables, in the order
the template declares them) and ``SessionContext`` (our outbox key). A request-level error comes
back as ``Response.Error``; per number, ``SendStatusSet[i].Code`` is ``Ok`` with a ``SerialNo``
or an error code mapped by ``error_class``. The timestamp must be within five minutes of
Tencent's clock (``AuthFailure.SignatureExpire``): keep the server's clock in sync.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, ClassVar

from cloud.notify.channels import signing
from cloud.notify.channels.base import REQUIRED, Message, Receipt
from cloud.notify.channels.http import HttpChannel, parse_templates, template_for
from cloud.notify.errors import ChannelDown, ChannelError, Rejected, RetryLater

ACTION, VERSION, SERVICE = "SendSms", "2021-01-11", "sms"
CONTENT_TYPE = "application/json; charset=utf-8"

_DOWN = ("AuthFailure", "FailedOperation.InsufficientBalanceInSmsPackage",
         "UnauthorizedOperation", "FailedOperation.ServiceSuspendDueToArrears")  # fmt: skip
_RETRY = ("LimitExceeded", "RequestLimitExceeded", "InternalError", "ResourceUnavailable",
          "FailedOperation.FailResolvePacket")  # fmt: skip


def error_class(code: str) -> type[ChannelError]:
    if code.startswith(_DOWN):
        return ChannelDown
    if code.startswith(_RETRY):
        return RetryLater
    return Rejected  # InvalidParameter*, FailedOperation.TemplateIncorrectOrUnapproved, ...


class TencentSms(HttpChannel):
    kind = "tencent"
    OPTIONS: ClassVar[dict[str, tuple[type | tuple[type, ...], Any]]] = {
        "secret_id": (str, REQUIRED),
        "secret_key": (str, REQUIRED),
        "sdk_app_id": (str, REQUIRED),
        "sign_name": (str, REQUIRED),
        "templates": (dict, REQUIRED),
        "region": (str, "ap-guangzhou"),
        "country_code": (str, "86"),  # for numbers given without "+"
        "endpoint": (str, "https://sms.tencentcloudapi.com/"),
        "host": (str, "sms.tencentcloudapi.com"),
        "connect_timeout_ms": (int, 3000),
        "read_timeout_ms": (int, 10000),
    }

    def __init__(
        self, name: str = "tencent", *, clock: Callable[[], float] = time.time, **settings: Any
    ) -> None:
        super().__init__(name, settings)
        self.templates = parse_templates(self.settings["templates"], f"channels.{name}")
        self._clock = clock

    def _e164(self, number: str) -> str:
        if number.startswith("+"):
            return number
        return f"+{self.settings['country_code']}{number.lstrip('0')}"

    def request(self, message: Message) -> tuple[str, dict[str, str], bytes]:
        code, params = template_for(self.templates, message, self.name)
        body = json.dumps(
            {
                "PhoneNumberSet": [self._e164(message.to)],
                "SmsSdkAppId": self.settings["sdk_app_id"],
                "SignName": self.settings["sign_name"],
                "TemplateId": code,
                "TemplateParamSet": [value for _, value in params],
                "SessionContext": message.key,
            },
            ensure_ascii=False,
        ).encode()
        timestamp = int(self._clock())
        host = self.settings["host"]
        headers = {
            "Content-Type": CONTENT_TYPE,
            "Host": host,
            "X-TC-Action": ACTION,
            "X-TC-Version": VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": self.settings["region"],
            "Authorization": signing.tc3_authorization(
                self.settings["secret_id"], self.settings["secret_key"], SERVICE, host,
                timestamp, body, CONTENT_TYPE,
            ),
        }  # fmt: skip
        return self.settings["endpoint"], headers, body

    async def _send(self, message: Message) -> Receipt:
        url, headers, body = self.request(message)
        status, content = await self._post(url, headers, body)
        try:
            response = json.loads(content)["Response"]
        except (ValueError, KeyError, TypeError):
            uncertain = status >= 500 or status == 200
            raise RetryLater(
                f"{self.name}: unreadable reply (HTTP {status})",
                code=f"HTTP {status}",
                uncertain=uncertain,
            ) from None
        error = response.get("Error")
        if error:
            code = str(error.get("Code", ""))
            raise error_class(code)(f"{self.name}: {code}: {error.get('Message', '')}", code=code)
        statuses = response.get("SendStatusSet") or [{}]
        first = statuses[0]
        code = str(first.get("Code", ""))
        if code == "Ok":
            serial = str(first.get("SerialNo", ""))
            return Receipt(serial, refs=(serial,))
        raise error_class(code)(f"{self.name}: {code}: {first.get('Message', '')}", code=code)
