"""Alipay (支付宝开放平台), RSA2, for the phone site: ``alipay.trade.wap.pay`` (手机网站支付),
plus thin signed requests for ``precreate`` (QR), ``query``, ``close``, ``refund`` and the
bill download URL. Signing rules: ``cloud.payments.alipay_codec``.

Notification handling, in this order (Alipay's own list, opendocs "异步通知验签"):
signature with the *Alipay* public key → ``app_id`` is ours → ``seller_id`` is ours →
``out_trade_no`` is an order of ours → ``total_amount`` equals the order's. Only
``TRADE_SUCCESS`` and ``TRADE_FINISHED`` are paid (FINISHED may follow SUCCESS for the same
trade: the order service credits once). Reply: the bare 7 bytes ``success``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives.asymmetric import rsa

from cloud.errors import InvalidError
from cloud.payments import alipay_codec as codec
from cloud.payments import bills
from cloud.payments.amounts import fen_from_yuan_text, yuan_text
from cloud.payments.errors import (
    NotificationMalformedError,
    NotificationMismatchError,
    ProviderError,
    SignatureInvalidError,
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
from cloud.payments.signing import (
    load_private_key,
    load_public_key,
    sign_sha256_rsa,
    verify_sha256_rsa,
)
from cloud.payments.transport import HttpRequest, NoTransport, Transport

GATEWAY = "https://openapi.alipay.com/gateway.do"
SANDBOX_GATEWAY = "https://openapi-sandbox.dl.alipaydev.com/gateway.do"
BEIJING = ZoneInfo("Asia/Shanghai")

_STATES = {
    "TRADE_SUCCESS": PAID,
    "TRADE_FINISHED": PAID,
    "WAIT_BUYER_PAY": PENDING,
    "TRADE_CLOSED": CLOSED,
}
_CONFIG_KEYS = {"app_id", "seller_id", "app_private_key", "alipay_public_key", "gateway"}


@dataclass(frozen=True)
class AlipayConfig:
    app_id: str
    seller_id: str  # the merchant's PID, 2088…; notifications must name it
    app_private_key: rsa.RSAPrivateKey
    alipay_public_key: rsa.RSAPublicKey
    gateway: str = GATEWAY

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AlipayConfig:
        """From configuration; an unknown key is an error naming it (convention 8)."""
        unknown = sorted(set(values) - _CONFIG_KEYS)
        if unknown:
            raise InvalidError(f"unknown Alipay setting {unknown[0]!r}", unknown[0])
        for key in ("app_id", "seller_id", "app_private_key", "alipay_public_key"):
            if not values.get(key):
                raise InvalidError(f"the Alipay setting {key} is required", key)
        return cls(
            app_id=str(values["app_id"]),
            seller_id=str(values["seller_id"]),
            app_private_key=load_private_key(values["app_private_key"], "app_private_key"),
            alipay_public_key=load_public_key(values["alipay_public_key"], "alipay_public_key"),
            gateway=str(values.get("gateway") or GATEWAY),
        )


def _beijing_now(clock: Callable[[], float]) -> str:
    return dt.datetime.fromtimestamp(clock(), BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def _beijing_time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    except ValueError as exc:
        raise NotificationMalformedError(f"time {text!r} is not yyyy-MM-dd HH:mm:ss") from exc


class AlipayProvider:
    name = "alipay"

    def __init__(
        self,
        config: AlipayConfig,
        transport: Transport | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:

        self.config = config
        self.transport = transport or NoTransport()
        self.clock = clock or time.time

    # --- requests ---------------------------------------------------------------------------

    def signed_params(self, method: str, biz: Mapping[str, object], **extra: str) -> dict[str, str]:
        """A request's public parameters plus ``sign`` (rule 1 of the codec)."""
        params = {
            "app_id": self.config.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": _beijing_now(self.clock),
            "version": "1.0",
            "biz_content": codec.biz_content(biz),
            **{k: v for k, v in extra.items() if v},
        }
        content = codec.request_sign_content(params).encode()
        params["sign"] = sign_sha256_rsa(self.config.app_private_key, content)
        return params

    def create(self, request: PayRequest) -> PayAction:
        """``alipay.trade.wap.pay``: a GET to the gateway with the signed parameters opens
        Alipay's cashier page (in a browser; WeChat's in-app browser blocks it)."""
        biz = {
            "out_trade_no": request.out_trade_no,
            "total_amount": yuan_text(request.amount_fen),
            "subject": request.subject,
            "product_code": "QUICK_WAP_WAY",
            "timeout_express": f"{request.timeout_minutes}m",
        }
        if request.return_url:
            biz["quit_url"] = request.return_url
        params = self.signed_params(
            "alipay.trade.wap.pay",
            biz,
            notify_url=request.notify_url,
            return_url=request.return_url,
        )
        return PayAction("redirect", f"{self.config.gateway}?{urlencode(params)}")

    def precreate(self, request: PayRequest) -> PayAction:
        """``alipay.trade.precreate`` (当面付): a QR code for a kiosk or a printed notice."""
        body = self._call(
            "alipay.trade.precreate",
            {
                "out_trade_no": request.out_trade_no,
                "total_amount": yuan_text(request.amount_fen),
                "subject": request.subject,
                "timeout_express": f"{request.timeout_minutes}m",
            },
            notify_url=request.notify_url,
        )
        self._raise_unless_ok(body, "precreate")
        return PayAction("qr", str(body["qr_code"]))

    def query(self, out_trade_no: str) -> TradeEvent:
        body = self._call("alipay.trade.query", {"out_trade_no": out_trade_no})
        if body.get("code") != "10000" and body.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return TradeEvent(self.name, out_trade_no, "", 0, NOT_FOUND, raw=body)
        self._raise_unless_ok(body, "query")
        if body.get("out_trade_no") != out_trade_no:
            raise ProviderError(f"Alipay answered the query for another trade: {body}")
        return TradeEvent(
            self.name,
            out_trade_no,
            str(body.get("trade_no") or ""),
            fen_from_yuan_text(body.get("total_amount"), "total_amount"),
            _STATES.get(str(body.get("trade_status")), PENDING),
            _beijing_time(body.get("send_pay_date")),
            raw=body,
        )

    def close(self, out_trade_no: str) -> None:
        body = self._call("alipay.trade.close", {"out_trade_no": out_trade_no})
        if body.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return  # never scanned: nothing to close
        self._raise_unless_ok(body, "close")

    def refund(self, out_trade_no: str, amount_fen: int, out_request_no: str) -> dict[str, Any]:
        """``alipay.trade.refund`` with a stable ``out_request_no``: repeating it is safe."""
        body = self._call(
            "alipay.trade.refund",
            {
                "out_trade_no": out_trade_no,
                "refund_amount": yuan_text(amount_fen),
                "out_request_no": out_request_no,
            },
        )
        self._raise_unless_ok(body, "refund")
        return body

    def bill_download_url(self, day: dt.date) -> str:
        body = self._call(
            "alipay.data.dataservice.bill.downloadurl.query",
            {"bill_type": "trade", "bill_date": day.isoformat()},
        )
        self._raise_unless_ok(body, "bill download URL")
        return str(body["bill_download_url"])

    def bill(self, day: dt.date) -> list[BillRow]:
        url = self.bill_download_url(day)  # valid for 30 s: fetch at once
        answer = self.transport.send(HttpRequest("GET", url))
        if answer.status != 200:
            raise ProviderError(f"Alipay's bill download answered HTTP {answer.status}")
        return bills.parse_alipay_bill(answer.body)

    def _call(self, method: str, biz: Mapping[str, object], **extra: str) -> dict[str, Any]:
        params = self.signed_params(method, biz, **extra)
        answer = self.transport.send(
            HttpRequest(
                "POST",
                self.config.gateway,
                {"content-type": "application/x-www-form-urlencoded;charset=utf-8"},
                urlencode(params).encode(),
            )
        )
        if answer.status != 200:
            raise ProviderError(f"Alipay answered HTTP {answer.status} to {method}")
        return self.verify_response(answer.body.decode("utf-8"), method)

    def verify_response(self, raw: str, method: str) -> dict[str, Any]:
        """A synchronous answer's ``<method>_response`` object, after checking ``sign`` over
        its raw JSON text. Alipay signs business answers, failed ones included; an answer
        without a signature (``error_response`` to a request it could not authenticate) is
        a ``ProviderError``."""
        key = method.replace(".", "_") + "_response"
        top = json.loads(raw) if raw.strip().startswith("{") else None
        if not isinstance(top, dict) or key not in top:
            raise ProviderError(f"Alipay's answer to {method} has no {key}: {raw[:200]}")
        signature = top.get("sign")
        if not isinstance(signature, str) or not signature:
            raise ProviderError(f"Alipay's answer to {method} is not signed: {raw[:200]}")
        content = codec.response_sign_content(raw, key)
        try:
            verify_sha256_rsa(self.config.alipay_public_key, content.encode(), signature)
        except SignatureInvalidError as exc:
            raise ProviderError(f"Alipay's answer to {method} fails its signature") from exc
        body = top[key]
        if not isinstance(body, dict):
            raise ProviderError(f"Alipay's {key} is not an object")
        return body

    @staticmethod
    def _raise_unless_ok(body: Mapping[str, Any], what: str) -> None:
        if body.get("code") != "10000":
            raise ProviderError(
                f"Alipay refused the {what}: {body.get('code')} {body.get('sub_code', '')} "
                f"{body.get('sub_msg') or body.get('msg', '')}".strip()
            )

    # --- notifications ----------------------------------------------------------------------

    def verify_notification(
        self, request: NotificationRequest, order_amount_fen: OrderAmount
    ) -> TradeEvent:
        form = codec.parse_form(request.body)
        if form.get("sign_type", "RSA2") != "RSA2":
            raise SignatureInvalidError(
                f"sign_type {form.get('sign_type')!r} is not RSA2", "sign_type"
            )
        verify_sha256_rsa(
            self.config.alipay_public_key,
            codec.notification_sign_content(form).encode("utf-8"),
            form.get("sign", ""),
        )
        return check_order(self.event_from_form(form), order_amount_fen)

    def event_from_form(self, form: Mapping[str, str]) -> TradeEvent:
        """The business fields of a notification whose signature has been checked."""
        for field in ("app_id", "out_trade_no", "trade_no", "trade_status", "total_amount"):
            if not form.get(field):
                raise NotificationMalformedError(f"the notification has no {field}", field)
        if form["app_id"] != self.config.app_id:
            raise NotificationMismatchError(f"app_id {form['app_id']!r} is not ours", "app_id")
        if form.get("seller_id") != self.config.seller_id:
            raise NotificationMismatchError(
                f"seller_id {form.get('seller_id')!r} is not ours", "seller_id"
            )
        state = _STATES.get(form["trade_status"])
        if state is None:
            raise NotificationMalformedError(
                f"trade_status {form['trade_status']!r} is not one Alipay sends", "trade_status"
            )
        try:
            amount_fen = fen_from_yuan_text(form["total_amount"], "total_amount")
            refunded = form.get("refund_fee") and fen_from_yuan_text(
                form["refund_fee"], "refund_fee"
            )
        except InvalidError as exc:
            raise NotificationMalformedError(exc.message, exc.field) from exc
        if refunded:
            state = REFUNDED  # a refund's notification repeats TRADE_SUCCESS (partial) or CLOSED
        return TradeEvent(
            self.name,
            form["out_trade_no"],
            form["trade_no"],
            amount_fen,
            state,
            _beijing_time(form.get("gmt_payment")),
            raw=dict(form),
        )

    def reply_ok(self) -> Reply:
        return Reply(200, b"success")

    def reply_rejected(self, error: Exception) -> Reply:
        # Anything but "success" makes Alipay send it again (4m, 10m, 10m, 1h, 2h, 6h, 15h).
        return Reply(400, b"failure")
