"""Tests play the providers: they hold the provider's private key (made locally) and sign
exactly as Alipay and WeChat Pay do, so the code under test sees what it would see live.

``FakeGateway`` is a real transport (no patching): it answers the provider's HTTP API with
bodies signed by the provider key and records the requests it got."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cloud.payments import alipay_codec, wechat_codec
from cloud.payments.provider import NotificationRequest
from cloud.payments.signing import sign_sha256_rsa
from cloud.payments.transport import HttpRequest, HttpResponse

VECTORS = Path(__file__).parent / "vectors"

APP_ID = "2014072300007148"
SELLER_ID = "2088101106499364"
MCHID = "1900000109"
APPID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "5157F09EFDC096DE15EBE81A47057A7232F1B8E1"
PLATFORM_SERIAL = "PUB_KEY_ID_0114232134912410000000000000"
APIV3_KEY = "0123456789abcdef0123456789ABCDEF"


def pem(name: str) -> str:
    return (VECTORS / name).read_text()


def private_key(name: str) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key((VECTORS / name).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def bare_base64(pem_text: str) -> str:
    """A key as Alipay's console shows it: the base64 body without armour or newlines."""
    return "".join(line for line in pem_text.splitlines() if not line.startswith("-----"))


def alipay_settings(**overrides: Any) -> dict[str, Any]:
    settings = {
        "app_id": APP_ID,
        "seller_id": SELLER_ID,
        "app_private_key": pem("merchant_key_pkcs1.pem"),
        "alipay_public_key": pem("provider_pub.pem"),
    }
    settings.update(overrides)
    return settings


def wechat_settings(**overrides: Any) -> dict[str, Any]:
    settings = {
        "mchid": MCHID,
        "appid": APPID,
        "merchant_serial": MERCHANT_SERIAL,
        "merchant_private_key": pem("merchant_key_pkcs8.pem"),
        "apiv3_key": APIV3_KEY,
        "platform_keys": {PLATFORM_SERIAL: pem("provider_pub.pem")},
    }
    settings.update(overrides)
    return settings


# --- Alipay -----------------------------------------------------------------------------------


def alipay_fields(
    out_trade_no: str = "GV20260301000001", amount: str = "12.30", **extra: str
) -> dict[str, str]:
    fields = {
        "notify_time": "2026-03-01 12:00:10",
        "notify_type": "trade_status_sync",
        "notify_id": "ac05099524730693a8b330c5ecf72da9786",
        "app_id": APP_ID,
        "charset": "utf-8",
        "version": "1.0",
        "trade_no": "2026030122001424330501234567",
        "out_trade_no": out_trade_no,
        "buyer_id": "2088102122524333",
        "seller_id": SELLER_ID,
        "trade_status": "TRADE_SUCCESS",
        "total_amount": amount,
        "subject": "电费充值 A-101",
        "body": "",
        "gmt_create": "2026-03-01 12:00:05",
        "gmt_payment": "2026-03-01 12:00:09",
        "fund_bill_list": '[{"amount":"' + amount + '","fundChannel":"ALIPAYACCOUNT"}]',
        "passback_params": "",
    }
    fields.update(extra)
    return fields


def alipay_sign(fields: Mapping[str, str], key: rsa.RSAPrivateKey | None = None) -> dict[str, str]:
    """Sign as Alipay signs a notification, then add sign_type (not part of what is signed)."""
    key = key or private_key("provider_key.pem")
    signed = dict(fields)
    signed["sign"] = sign_sha256_rsa(key, alipay_codec.notification_sign_content(fields).encode())
    signed["sign_type"] = "RSA2"
    return signed


def alipay_notification(fields: Mapping[str, str], encoding: str = "utf-8") -> NotificationRequest:
    return NotificationRequest(
        {"content-type": "application/x-www-form-urlencoded; charset=utf-8"},
        urlencode(fields, encoding=encoding).encode(),
    )


# --- WeChat Pay -------------------------------------------------------------------------------


def wechat_transaction(
    out_trade_no: str = "GV20260301000001", total: int = 1230, **extra: Any
) -> dict[str, Any]:
    tx: dict[str, Any] = {
        "mchid": MCHID,
        "appid": APPID,
        "out_trade_no": out_trade_no,
        "transaction_id": "4200000925202603012997714292",
        "trade_type": "MWEB",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2026-03-01T12:00:09+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {
            "total": total,
            "payer_total": total,
            "currency": "CNY",
            "payer_currency": "CNY",
        },
    }
    tx.update(extra)
    return tx


def wechat_callback(
    transaction: Mapping[str, Any] | bytes,
    *,
    timestamp: int,
    nonce: str = "fdasfwe4ggr23a2",
    key: rsa.RSAPrivateKey | None = None,
    serial: str = PLATFORM_SERIAL,
    apiv3_key: str = APIV3_KEY,
    event_type: str = "TRANSACTION.SUCCESS",
    signature: str | None = None,
) -> NotificationRequest:
    plain = (
        transaction
        if isinstance(transaction, bytes)
        else json.dumps(transaction, ensure_ascii=False).encode()
    )
    resource = wechat_codec.encrypt_resource(
        apiv3_key.encode(), plain, "fdasflkja484", "transaction"
    )
    resource["original_type"] = "transaction"
    envelope = {
        "id": "EV-2018022511223320873",
        "create_time": "2026-03-01T12:00:10+08:00",
        "resource_type": "encrypt-resource",
        "event_type": event_type,
        "summary": "支付成功",
        "resource": resource,
    }
    body = json.dumps(envelope, ensure_ascii=False).encode()
    return signed_by_wechat(
        body, timestamp=timestamp, nonce=nonce, key=key, serial=serial, signature=signature
    )


def signed_by_wechat(
    body: bytes,
    *,
    timestamp: int,
    nonce: str = "fdasfwe4ggr23a2",
    key: rsa.RSAPrivateKey | None = None,
    serial: str = PLATFORM_SERIAL,
    signature: str | None = None,
) -> NotificationRequest:
    key = key or private_key("provider_key.pem")
    if signature is None:
        signature = sign_sha256_rsa(key, wechat_codec.callback_message(str(timestamp), nonce, body))
    headers = {
        "wechatpay-timestamp": str(timestamp),
        "wechatpay-nonce": nonce,
        "wechatpay-signature": signature,
        "wechatpay-serial": serial,
        "wechatpay-signature-type": "WECHATPAY2-SHA256-RSA2048",
        "content-type": "application/json",
    }
    return NotificationRequest(headers, body)


# --- the providers' HTTP APIs -----------------------------------------------------------------


class FakeGateway:
    """A transport that answers like the provider's API. ``routes`` maps a key (Alipay: the
    ``method`` parameter; WeChat: "METHOD path-prefix") to a function of the request giving
    (status, body, sign) where ``sign`` tells whether to sign the answer."""

    def __init__(
        self, kind: str, clock: Callable[[], float], key: rsa.RSAPrivateKey | None = None
    ) -> None:
        self.kind = kind
        self.clock = clock
        self.key = key or private_key("provider_key.pem")
        self.routes: dict[str, Callable[[HttpRequest], tuple[int, bytes]]] = {}
        self.requests: list[HttpRequest] = []
        self.sign_answers = True

    def send(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        if self.kind == "alipay" and request.method == "POST":
            params = dict(parse_qsl(request.body.decode()))
            status, body = self.routes[params["method"]](request)
            return HttpResponse(status, {"content-type": "application/json"}, body)
        for prefix, route in self.routes.items():
            method, _, path = prefix.partition(" ")
            if request.method == method and path in request.url:
                status, body = route(request)
                headers = {"content-type": "application/json"}
                if self.kind == "wechat" and self.sign_answers:
                    headers.update(
                        signed_by_wechat(body, timestamp=int(self.clock()), key=self.key).headers
                    )
                return HttpResponse(status, headers, body)
        raise AssertionError(f"no route for {request.method} {request.url}")

    def alipay_answer(
        self, response_key: str, body: Mapping[str, Any], sign: bool = True, raw: str | None = None
    ) -> bytes:
        """``{"<key>": {...}, "sign": "..."}`` with the signature over the raw inner JSON."""
        inner = raw if raw is not None else json.dumps(body, ensure_ascii=False)
        text = '{"' + response_key + '":' + inner
        if sign:
            text += ',"sign":"' + sign_sha256_rsa(self.key, inner.encode()) + '"'
        return (text + "}").encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
