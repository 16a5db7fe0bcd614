"""WeChat Pay API v3 (直连商户): H5 (other mobile browsers), JSAPI (inside WeChat), Native (QR),
and the query, close, refund and trade-bill calls. Signing rules: ``cloud.payments.wechat_codec``.

A payment callback is handled in this order: the signature headers (pinned serial, not a
SIGNTEST probe, fresh) over the raw body → ``event_type`` and ``resource`` → AES-GCM
decryption with the APIv3 key → ``mchid`` and ``appid`` are ours → ``out_trade_no`` is an
order of ours → ``amount.total`` (fen) equals the order's. Only ``trade_state=SUCCESS`` is paid.
Reply 204 with no body; a rejection is 4xx with ``{"code":"FAIL","message":…}``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa

from cloud.errors import InvalidError
from cloud.payments import bills
from cloud.payments import wechat_codec as codec
from cloud.payments.amounts import fen_from_int
from cloud.payments.errors import (
    NotificationMalformedError,
    NotificationMismatchError,
    NotificationRejectedError,
    ProviderError,
)
from cloud.payments.provider import (
    CLOSED,
    NOT_FOUND,
    PAID,
    PENDING,
    REFUNDED,
    BillRow,
    NotificationRequest,
    OrderAmount,
    PayAction,
    PayRequest,
    Reply,
    TradeEvent,
    check_order,
)
from cloud.payments.signing import load_private_key, load_public_key
from cloud.payments.transport import HttpRequest, HttpResponse, NoTransport, Transport

API = "https://api.mch.weixin.qq.com"
_STATES = {
    "SUCCESS": PAID,
    "REFUND": REFUNDED,
    "NOTPAY": PENDING,
    "USERPAYING": PENDING,
    "CLOSED": CLOSED,
    "REVOKED": CLOSED,
    "PAYERROR": CLOSED,
}
_CONFIG_KEYS = {
    "mchid",
    "appid",
    "merchant_serial",
    "merchant_private_key",
    "apiv3_key",
    "platform_keys",
    "api",
}


@dataclass(frozen=True)
class WechatConfig:
    mchid: str
    appid: str
    merchant_serial: str  # the merchant API certificate's serial, sent in Authorization
    merchant_private_key: rsa.RSAPrivateKey
    apiv3_key: bytes  # 32 bytes
    platform_keys: Mapping[str, rsa.RSAPublicKey] = field(default_factory=dict)  # serial → key
    api: str = API

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> WechatConfig:
        """From configuration; ``platform_keys`` maps each pinned serial (a platform
        certificate's, or a ``PUB_KEY_ID_…``) to its PEM. Unknown keys are an error."""
        unknown = sorted(set(values) - _CONFIG_KEYS)
        if unknown:
            raise InvalidError(f"unknown WeChat Pay setting {unknown[0]!r}", unknown[0])
        for key in ("mchid", "appid", "merchant_serial", "merchant_private_key", "apiv3_key"):
            if not values.get(key):
                raise InvalidError(f"the WeChat Pay setting {key} is required", key)
        apiv3 = str(values["apiv3_key"]).encode()
        if len(apiv3) != 32:
            raise InvalidError("apiv3_key must be the 32-character APIv3 key", "apiv3_key")
        platform = values.get("platform_keys") or {}
        if not isinstance(platform, Mapping) or not platform:
            raise InvalidError(
                "platform_keys must map at least one serial to a key", "platform_keys"
            )
        return cls(
            mchid=str(values["mchid"]),
            appid=str(values["appid"]),
            merchant_serial=str(values["merchant_serial"]),
            merchant_private_key=load_private_key(
                values["merchant_private_key"], "merchant_private_key"
            ),
            apiv3_key=apiv3,
            platform_keys={
                str(serial): load_public_key(pem, f"platform_keys.{serial}")
                for serial, pem in platform.items()
            },
            api=str(values.get("api") or API),
        )


def _rfc3339(text: object) -> dt.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise NotificationMalformedError(f"time {text!r} is not RFC 3339", "success_time") from exc


class WechatProvider:
    name = "wechat"

    def __init__(
        self,
        config: WechatConfig,
        transport: Transport | None = None,
        clock: Callable[[], float] | None = None,
        nonce: Callable[[], str] | None = None,
    ) -> None:

        self.config = config
        self.transport = transport or NoTransport()
        self.clock = clock or time.time
        self.nonce = nonce or (lambda: secrets.token_hex(16).upper())

    # --- requests ---------------------------------------------------------------------------

    def sign_request(self, method: str, url: str, body: bytes = b"") -> dict[str, str]:
        """Headers for one API request; ``url`` absolute or a path."""
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        header = codec.authorization(
            mchid=self.config.mchid,
            serial_no=self.config.merchant_serial,
            private_key=self.config.merchant_private_key,
            method=method,
            url=path,
            body=body,
            timestamp=str(int(self.clock())),
            nonce=self.nonce(),
        )
        headers = {"authorization": header, "accept": "application/json"}
        if body:
            headers["content-type"] = "application/json"
        return headers

    def _call(
        self, method: str, path: str, payload: Mapping[str, object] | None = None
    ) -> HttpResponse:
        body = (
            json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
            if payload
            else b""
        )
        url = self.config.api + path
        answer = self.transport.send(
            HttpRequest(method, url, self.sign_request(method, url, body), body)
        )
        if answer.status >= 500:
            raise ProviderError(f"WeChat Pay answered HTTP {answer.status} to {method} {path}")
        try:
            codec.verify_signed(
                answer.headers, answer.body, self.config.platform_keys, self.clock()
            )
        except NotificationRejectedError as exc:
            raise ProviderError(
                f"WeChat Pay's answer to {path} fails its signature: {exc.message}"
            ) from exc
        return answer

    @staticmethod
    def _json(answer: HttpResponse, what: str) -> dict[str, Any]:
        try:
            body = json.loads(answer.body) if answer.body else {}
        except json.JSONDecodeError as exc:
            raise ProviderError(f"WeChat Pay's answer to {what} is not JSON") from exc
        if answer.status >= 300:
            raise ProviderError(
                f"WeChat Pay refused the {what}: HTTP {answer.status} "
                f"{body.get('code', '')} {body.get('message', '')}".strip()
            )
        return dict(body)

    def _order_body(self, request: PayRequest) -> dict[str, Any]:
        expire = dt.datetime.fromtimestamp(
            self.clock() + request.timeout_minutes * 60, dt.timezone(dt.timedelta(hours=8))
        )
        return {
            "appid": self.config.appid,
            "mchid": self.config.mchid,
            "description": request.subject,
            "out_trade_no": request.out_trade_no,
            "time_expire": expire.isoformat(timespec="seconds"),
            "notify_url": request.notify_url,
            "amount": {"total": request.amount_fen, "currency": "CNY"},
        }

    def create(self, request: PayRequest) -> PayAction:
        """H5: ``POST /v3/pay/transactions/h5`` → ``h5_url`` (plus ``redirect_url`` back)."""
        body = self._order_body(request)
        body["scene_info"] = {"payer_client_ip": request.client_ip, "h5_info": {"type": "Wap"}}
        answer = self._json(self._call("POST", "/v3/pay/transactions/h5", body), "H5 order")
        url = str(answer["h5_url"])
        if request.return_url:
            url += "&redirect_url=" + quote(request.return_url, safe="")
        return PayAction("redirect", url)

    def create_jsapi(self, request: PayRequest, openid: str) -> PayAction:
        """JSAPI (inside WeChat): the fields the page hands to ``getBrandWCPayRequest``."""
        body = self._order_body(request)
        body["payer"] = {"openid": openid}
        answer = self._json(self._call("POST", "/v3/pay/transactions/jsapi", body), "JSAPI order")
        timestamp, nonce = str(int(self.clock())), self.nonce()
        prepay = str(answer["prepay_id"])
        return PayAction(
            "jsapi",
            "",
            {
                "appId": self.config.appid,
                "timeStamp": timestamp,
                "nonceStr": nonce,
                "package": f"prepay_id={prepay}",
                "signType": "RSA",
                "paySign": codec.jsapi_pay_sign(
                    self.config.appid, timestamp, nonce, prepay, self.config.merchant_private_key
                ),
            },
        )

    def create_native(self, request: PayRequest) -> PayAction:
        answer = self._json(
            self._call("POST", "/v3/pay/transactions/native", self._order_body(request)),
            "Native order",
        )
        return PayAction("qr", str(answer["code_url"]))

    def query(self, out_trade_no: str) -> TradeEvent:
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}?mchid={self.config.mchid}"
        answer = self._call("GET", path)
        if answer.status == 404:
            return TradeEvent(self.name, out_trade_no, "", 0, NOT_FOUND)
        body = self._json(answer, "query")
        if body.get("out_trade_no") != out_trade_no or body.get("mchid") != self.config.mchid:
            raise ProviderError(f"WeChat Pay answered the query for another trade: {body}")
        state = _STATES.get(str(body.get("trade_state")))
        if state is None:
            raise ProviderError(f"WeChat Pay's trade_state {body.get('trade_state')!r} is unknown")
        amount = body.get("amount") or {}
        return TradeEvent(
            self.name,
            out_trade_no,
            str(body.get("transaction_id") or ""),
            fen_from_int(amount.get("total", 0), "amount.total"),
            state,
            _rfc3339(body.get("success_time")),
            raw=body,
        )

    def close(self, out_trade_no: str) -> None:
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close"
        answer = self._call("POST", path, {"mchid": self.config.mchid})
        if answer.status != 204:
            self._json(answer, "close")

    def refund(
        self, out_trade_no: str, amount_fen: int, total_fen: int, out_refund_no: str
    ) -> dict[str, Any]:
        """``/v3/refund/domestic/refunds`` with a stable ``out_refund_no`` (safe to repeat)."""
        body = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "amount": {"refund": amount_fen, "total": total_fen, "currency": "CNY"},
        }
        return self._json(self._call("POST", "/v3/refund/domestic/refunds", body), "refund")

    def bill(self, day: dt.date) -> list[BillRow]:
        """``/v3/bill/tradebill`` (GZIP), then the signed download. The file itself carries no
        signature: its SHA1 must equal ``hash_value``. Practice reports compare the hash with
        the decompressed file; we accept either form so a gzip re-pack cannot fail a true bill."""
        path = f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=ALL&tar_type=GZIP"
        meta = self._json(self._call("GET", path), "trade bill")
        url = str(meta["download_url"])
        answer = self.transport.send(HttpRequest("GET", url, self.sign_request("GET", url)))
        if answer.status != 200:
            raise ProviderError(f"WeChat Pay's bill download answered HTTP {answer.status}")
        raw = answer.body
        plain = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        expected = str(meta.get("hash_value", "")).lower()
        if expected not in (hashlib.sha1(plain).hexdigest(), hashlib.sha1(raw).hexdigest()):
            raise ProviderError(f"the WeChat Pay bill for {day} does not match its SHA1 hash")
        return bills.parse_wechat_bill(plain)

    # --- callbacks --------------------------------------------------------------------------

    def verify_notification(
        self, request: NotificationRequest, order_amount_fen: OrderAmount
    ) -> TradeEvent:
        codec.verify_signed(request.headers, request.body, self.config.platform_keys, self.clock())
        try:
            envelope = json.loads(request.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise NotificationMalformedError("the callback body is not JSON") from exc
        if not isinstance(envelope, dict) or not isinstance(envelope.get("resource"), dict):
            raise NotificationMalformedError("the callback has no resource", "resource")
        if not str(envelope.get("event_type", "")).startswith("TRANSACTION."):
            raise NotificationMalformedError(
                f"event_type {envelope.get('event_type')!r} is not a payment's", "event_type"
            )
        plain = codec.decrypt_resource(self.config.apiv3_key, envelope["resource"])
        try:
            transaction = json.loads(plain)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise NotificationMalformedError(
                "the decrypted resource is not JSON", "resource"
            ) from exc
        if not isinstance(transaction, dict):
            raise NotificationMalformedError("the decrypted resource is not an object", "resource")
        return check_order(self.event_from_transaction(transaction), order_amount_fen)

    def event_from_transaction(self, tx: Mapping[str, Any]) -> TradeEvent:
        for name in ("mchid", "appid", "out_trade_no", "transaction_id", "trade_state", "amount"):
            if not tx.get(name):
                raise NotificationMalformedError(f"the transaction has no {name}", name)
        if tx["mchid"] != self.config.mchid:
            raise NotificationMismatchError(f"mchid {tx['mchid']!r} is not ours", "mchid")
        if tx["appid"] != self.config.appid:
            raise NotificationMismatchError(f"appid {tx['appid']!r} is not ours", "appid")
        state = _STATES.get(str(tx["trade_state"]))
        if state is None:
            raise NotificationMalformedError(
                f"trade_state {tx['trade_state']!r} is unknown", "trade_state"
            )
        amount = tx["amount"]
        if not isinstance(amount, Mapping):
            raise NotificationMalformedError("amount is not an object", "amount")
        if amount.get("currency", "CNY") != "CNY":
            raise NotificationMismatchError(
                f"currency {amount.get('currency')!r} is not CNY", "amount.currency"
            )
        try:
            total = fen_from_int(amount.get("total"), "amount.total")
        except InvalidError as exc:
            raise NotificationMalformedError(exc.message, exc.field) from exc
        return TradeEvent(
            self.name,
            str(tx["out_trade_no"]),
            str(tx["transaction_id"]),
            total,
            state,
            _rfc3339(tx.get("success_time")),
            raw=dict(tx),
        )

    def reply_ok(self) -> Reply:
        return Reply(204)

    def reply_rejected(self, error: Exception) -> Reply:
        status = error.status if isinstance(error, NotificationRejectedError) else 500
        message = error.message if isinstance(error, NotificationRejectedError) else "失败"
        body = json.dumps({"code": "FAIL", "message": message}, ensure_ascii=False).encode()
        return Reply(status if 400 <= status < 600 else 400, body, "application/json")
