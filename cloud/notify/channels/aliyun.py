"""Aliyun SMS (阿里云短信) ``SendSms`` (dysmsapi, version 2017-05-25) with V3 signed requests.

One request per message: ``PhoneNumbers``, ``SignName``, ``TemplateCode`` (an approved
template, from the ``templates`` setting), ``TemplateParam`` (a JSON string of the template's
variables) and ``OutId`` (our outbox key, echoed in delivery receipts). The reply's ``Code`` is
``OK`` with a ``BizId``, or an error code mapped by ``ERRORS``. SendSms is not idempotent: the
outbox, not the provider, keeps a message from going twice.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any, ClassVar

from cloud.notify.channels import signing
from cloud.notify.channels.base import REQUIRED, Message, Receipt
from cloud.notify.channels.http import HttpChannel, parse_templates, template_for
from cloud.notify.errors import ChannelDown, ChannelError, Rejected, RetryLater

ACTION, VERSION = "SendSms", "2017-05-25"

# Code -> the error class it means (isv.* business errors, then the gateway's own).
ERRORS: dict[str, type[ChannelError]] = {
    "isv.SMS_TEMPLATE_ILLEGAL": Rejected,
    "isv.TEMPLATE_MISSING_PARAMETERS": Rejected,
    "isv.TEMPLATE_PARAMS_ILLEGAL": Rejected,
    "isv.SMS_SIGNATURE_ILLEGAL": Rejected,
    "isv.SMS_SIGN_ILLEGAL": Rejected,
    "isv.MOBILE_NUMBER_ILLEGAL": Rejected,
    "isv.MOBILE_COUNT_OVER_LIMIT": Rejected,
    "isv.PARAM_NOT_SUPPORT_URL": Rejected,
    "isv.PARAM_LENGTH_LIMIT": Rejected,
    "isv.INVALID_PARAMETERS": Rejected,
    "isv.INVALID_JSON_PARAM": Rejected,
    "isv.BLACK_KEY_CONTROL_LIMIT": Rejected,
    "isv.BUSINESS_LIMIT_CONTROL": RetryLater,
    "isv.DAY_LIMIT_CONTROL": RetryLater,
    "Throttling.User": RetryLater,
    "isp.SYSTEM_ERROR": RetryLater,
    "isp.RAM_PERMISSION_DENY": ChannelDown,
    "isv.AMOUNT_NOT_ENOUGH": ChannelDown,
    "isv.ACCOUNT_NOT_EXISTS": ChannelDown,
    "isv.ACCOUNT_ABNORMAL": ChannelDown,
    "isv.OUT_OF_SERVICE": ChannelDown,
    "SignatureDoesNotMatch": ChannelDown,
    "IncompleteSignature": ChannelDown,
    "InvalidAccessKeyId.NotFound": ChannelDown,
    "InvalidAccessKeyId.Inactive": ChannelDown,
    "Forbidden.RAM": ChannelDown,
}


class AliyunSms(HttpChannel):
    kind = "aliyun"
    OPTIONS: ClassVar[dict[str, tuple[type | tuple[type, ...], Any]]] = {
        "access_key_id": (str, REQUIRED),
        "access_key_secret": (str, REQUIRED),
        "sign_name": (str, REQUIRED),
        "templates": (dict, REQUIRED),
        "endpoint": (str, "https://dysmsapi.aliyuncs.com/"),
        "host": (str, "dysmsapi.aliyuncs.com"),
        "connect_timeout_ms": (int, 3000),
        "read_timeout_ms": (int, 10000),
    }

    def __init__(
        self,
        name: str = "aliyun",
        *,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_hex(16),
        **settings: Any,
    ) -> None:
        super().__init__(name, settings)
        self.templates = parse_templates(self.settings["templates"], f"channels.{name}")
        self._clock = clock
        self._nonce = nonce

    def request(self, message: Message) -> tuple[str, dict[str, str], bytes]:
        """(url, headers, body) of the signed SendSms request for ``message``."""
        code, params = template_for(self.templates, message, self.name)
        query = {
            "PhoneNumbers": message.to,
            "SignName": self.settings["sign_name"],
            "TemplateCode": code,
            "TemplateParam": json.dumps(dict(params), ensure_ascii=False, separators=(",", ":")),
            "OutId": message.key,
        }
        body = b""
        headers = {
            "host": self.settings["host"],
            "x-acs-action": ACTION,
            "x-acs-version": VERSION,
            "x-acs-date": signing.acs3_date(self._clock()),
            "x-acs-signature-nonce": self._nonce(),
            "x-acs-content-sha256": signing.sha256_hex(body),
        }
        headers["Authorization"] = signing.acs3_authorization(
            self.settings["access_key_id"],
            self.settings["access_key_secret"],
            "POST",
            "/",
            query,
            headers,
            body,
        )
        url = self.settings["endpoint"].rstrip("/") + "/?" + signing.canonical_query(query)
        return url, headers, body

    async def _send(self, message: Message) -> Receipt:
        url, headers, body = self.request(message)
        status, content = await self._post(url, headers, body)
        try:
            reply = json.loads(content)
            code = str(reply.get("Code", ""))
        except (ValueError, AttributeError):
            reply, code = {}, ""
        if status == 200 and code == "OK":
            return Receipt(str(reply.get("BizId", "")), refs=(str(reply.get("BizId", "")),))
        text = f"{self.name}: {code or f'HTTP {status}'}: {reply.get('Message', '')}".rstrip(": ")
        if code in ERRORS:
            raise ERRORS[code](text, code=code)
        if status >= 500 or not code:
            raise RetryLater(text, code=code or f"HTTP {status}", uncertain=status >= 500)
        raise RetryLater(text, code=code)  # an unknown code: retried, within the outbox's limits
