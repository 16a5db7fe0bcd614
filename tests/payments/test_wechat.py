"""WeChat Pay API v3: the Authorization header (WeChat's documented example, signed by openssl),
callbacks verified over the raw body with a pinned serial, fresh timestamps only, SIGNTEST
probes refused, AES-256-GCM resource decryption (vector from pycryptodome), business checks,
and signed API answers."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json

import pytest
from Crypto.Cipher import AES  # pycryptodome: an independent AES-GCM for the vector

from cloud.errors import InvalidError
from cloud.payments import make_provider, wechat_codec
from cloud.payments.errors import (
    NotificationMalformedError,
    NotificationMismatchError,
    NotificationStaleError,
    ProviderError,
    SignatureInvalidError,
)
from cloud.payments.provider import NOT_FOUND, PAID, PENDING, NotificationRequest, PayRequest
from cloud.payments.signing import load_private_key, load_public_key, verify_sha256_rsa
from cloud.payments.wechat import WechatProvider
from tests.payments.players import (
    APIV3_KEY,
    APPID,
    MCHID,
    MERCHANT_SERIAL,
    PLATFORM_SERIAL,
    VECTORS,
    FakeGateway,
    pem,
    private_key,
    public_pem,
    signed_by_wechat,
    wechat_callback,
    wechat_settings,
    wechat_transaction,
)

VECTOR = json.loads((VECTORS / "vectors.json").read_text())
NOW = 1772337610  # 2026-03-01 12:00:10 +08:00
ORDERS = {"GV20260301000001": 1230}


def provider(gateway: FakeGateway | None = None, now: float = NOW) -> WechatProvider:
    made = make_provider("wechat", wechat_settings(), gateway, lambda: now)
    assert isinstance(made, WechatProvider)
    return made


def test_authorization_header_for_wechats_documented_example_matches_openssl() -> None:
    key = load_private_key(pem("merchant_key_pkcs8.pem"))
    message = wechat_codec.request_message(
        "GET", "/v3/certificates", "1554208460", "593BEC0C930BF1AFEB40B4A08C8FB242", ""
    )
    assert message == (VECTORS / "wechat_request.txt").read_bytes()
    header = wechat_codec.authorization(
        mchid="1900009191",
        serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C",
        private_key=key,
        method="GET",
        url="/v3/certificates",
        body="",
        timestamp="1554208460",
        nonce="593BEC0C930BF1AFEB40B4A08C8FB242",
    )
    assert header == (
        'WECHATPAY2-SHA256-RSA2048 mchid="1900009191",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB242",'
        f'signature="{VECTOR["wechat_request_sign"]}",timestamp="1554208460",'
        'serial_no="1DDE55AD98ED71D6EDD4A4A16996DE7B47773A8C"'
    )


def test_request_signature_covers_path_query_and_exact_body() -> None:
    p = make_provider("wechat", wechat_settings(), None, lambda: NOW)
    assert isinstance(p, WechatProvider)
    p.nonce = lambda: "N1"
    body = b'{"mchid":"1900000109"}'
    headers = p.sign_request(
        "POST", "https://api.mch.weixin.qq.com/v3/pay/transactions/h5?x=1", body
    )
    signature = headers["authorization"].split('signature="')[1].split('"')[0]
    merchant_public = load_public_key(public_pem(private_key("merchant_key_pkcs8.pem")))
    expected = f"POST\n/v3/pay/transactions/h5?x=1\n{NOW}\nN1\n".encode() + body + b"\n"
    verify_sha256_rsa(merchant_public, expected, signature)
    assert f'serial_no="{MERCHANT_SERIAL}"' in headers["authorization"]
    assert f'mchid="{MCHID}"' in headers["authorization"]


def test_callback_vector_from_openssl_verifies_over_the_raw_body() -> None:
    body = (VECTORS / "wechat_body.json").read_bytes()
    headers = {
        "wechatpay-timestamp": "1772337610",
        "wechatpay-nonce": "fdasfwe4ggr23a2",
        "wechatpay-signature": VECTOR["wechat_callback_sign"],
        "wechatpay-serial": PLATFORM_SERIAL,
    }
    keys = {PLATFORM_SERIAL: load_public_key(pem("provider_pub.pem"))}
    assert wechat_codec.verify_signed(headers, body, keys, NOW) == PLATFORM_SERIAL
    # The same JSON re-serialised (other spacing) is not what WeChat signed.
    reserialised = json.dumps(json.loads(body), ensure_ascii=False, indent=1).encode()
    with pytest.raises(SignatureInvalidError):
        wechat_codec.verify_signed(headers, reserialised, keys, NOW)


def test_resource_decryption_matches_an_independent_aes_gcm() -> None:
    plaintext = json.dumps(wechat_transaction(), ensure_ascii=False).encode()
    cipher = AES.new(APIV3_KEY.encode(), AES.MODE_GCM, nonce=b"fdasflkja484")
    cipher.update(b"transaction")
    sealed, tag = cipher.encrypt_and_digest(plaintext)
    resource = {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed + tag).decode(),
        "associated_data": "transaction",
        "nonce": "fdasflkja484",
    }
    assert wechat_codec.decrypt_resource(APIV3_KEY.encode(), resource) == plaintext
    assert (
        wechat_codec.encrypt_resource(APIV3_KEY.encode(), plaintext, "fdasflkja484", "transaction")
        == resource
    )


def test_a_true_callback_is_a_paid_event_in_fen() -> None:
    event = provider().verify_notification(
        wechat_callback(wechat_transaction(), timestamp=NOW), ORDERS.get
    )
    assert (event.state, event.amount_fen, event.trade_no) == (
        PAID,
        1230,
        "4200000925202603012997714292",
    )
    assert event.occurred_at == dt.datetime.fromisoformat("2026-03-01T12:00:09+08:00")


def test_signtest_probes_are_rejected() -> None:
    note = wechat_callback(
        wechat_transaction(), timestamp=NOW, signature="WECHATPAY/SIGNTEST/" + "A" * 40
    )
    with pytest.raises(SignatureInvalidError, match="SIGNTEST"):
        provider().verify_notification(note, ORDERS.get)


def test_an_unknown_serial_is_rejected_without_any_download() -> None:
    gw = FakeGateway("wechat", lambda: NOW)
    note = wechat_callback(wechat_transaction(), timestamp=NOW, serial="PUB_KEY_ID_NOT_PINNED")
    with pytest.raises(SignatureInvalidError, match="not a WeChat Pay key we trust"):
        provider(gw).verify_notification(note, ORDERS.get)
    assert gw.requests == []


def test_signed_by_another_key_under_the_pinned_serial_is_rejected() -> None:
    note = wechat_callback(
        wechat_transaction(), timestamp=NOW, key=private_key("merchant_key_pkcs1.pem")
    )
    with pytest.raises(SignatureInvalidError):
        provider().verify_notification(note, ORDERS.get)


@pytest.mark.parametrize("skew", [301, -301, 3600])
def test_a_timestamp_more_than_five_minutes_away_is_stale(skew: int) -> None:
    note = wechat_callback(wechat_transaction(), timestamp=NOW - skew)
    with pytest.raises(NotificationStaleError):
        provider().verify_notification(note, ORDERS.get)


@pytest.mark.parametrize("skew", [300, -300, 0])
def test_a_timestamp_within_five_minutes_is_fresh(skew: int) -> None:
    note = wechat_callback(wechat_transaction(), timestamp=NOW - skew)
    assert provider().verify_notification(note, ORDERS.get).is_paid


def test_a_tampered_body_fails_the_signature() -> None:
    note = wechat_callback(wechat_transaction(), timestamp=NOW)
    tampered = note.body.replace(b"TRANSACTION.SUCCESS", b"TRANSACTION.SUCCESX")
    with pytest.raises(SignatureInvalidError):
        provider().verify_notification(NotificationRequest(note.headers, tampered), ORDERS.get)


def test_a_resource_sealed_with_another_apiv3_key_is_rejected() -> None:
    note = wechat_callback(wechat_transaction(), timestamp=NOW, apiv3_key="X" * 32)
    with pytest.raises(SignatureInvalidError, match="AES-GCM"):
        provider().verify_notification(note, ORDERS.get)


@pytest.mark.parametrize(
    ("change", "error", "field"),
    [
        ({"mchid": "1900000000"}, NotificationMismatchError, "mchid"),
        ({"appid": "wx0000000000000000"}, NotificationMismatchError, "appid"),
        ({"out_trade_no": "GV-NOT-OURS"}, NotificationMismatchError, "out_trade_no"),
        ({"amount": {"total": 1, "currency": "CNY"}}, NotificationMismatchError, "amount"),
        (
            {"amount": {"total": 12.3, "currency": "CNY"}},
            NotificationMalformedError,
            "amount.total",
        ),
        (
            {"amount": {"total": 1230, "currency": "USD"}},
            NotificationMismatchError,
            "amount.currency",
        ),
        ({"trade_state": "WHATEVER"}, NotificationMalformedError, "trade_state"),
    ],
)
def test_signed_but_wrong_business_fields_are_rejected(
    change: dict, error: type, field: str
) -> None:
    note = wechat_callback(wechat_transaction(**change), timestamp=NOW)
    with pytest.raises(error) as caught:
        provider().verify_notification(note, ORDERS.get)
    assert caught.value.field == field


def test_an_unpaid_state_is_an_event_but_not_paid() -> None:
    note = wechat_callback(wechat_transaction(trade_state="NOTPAY"), timestamp=NOW)
    assert provider().verify_notification(note, ORDERS.get).state == PENDING


@pytest.mark.parametrize(
    "body", [b"", b"{", b"[]", b'{"resource": 1}', '{"a":"\u00e9"}'.encode("latin-1")]
)
def test_malformed_bodies_signed_properly_are_still_rejected(body: bytes) -> None:
    with pytest.raises(NotificationMalformedError):
        provider().verify_notification(signed_by_wechat(body, timestamp=NOW), ORDERS.get)


def test_a_refund_event_at_the_payment_url_is_rejected() -> None:
    note = wechat_callback(wechat_transaction(), timestamp=NOW, event_type="REFUND.SUCCESS")
    with pytest.raises(NotificationMalformedError, match="event_type"):
        provider().verify_notification(note, ORDERS.get)


def test_missing_headers_are_signature_errors() -> None:
    note = wechat_callback(wechat_transaction(), timestamp=NOW)
    for name in (
        "wechatpay-signature",
        "wechatpay-serial",
        "wechatpay-nonce",
        "wechatpay-timestamp",
    ):
        headers = {k: v for k, v in note.headers.items() if k != name}
        with pytest.raises(SignatureInvalidError):
            provider().verify_notification(NotificationRequest(headers, note.body), ORDERS.get)


def test_replies_are_204_or_a_fail_json() -> None:
    p = provider()
    assert p.reply_ok().status == 204
    assert p.reply_ok().body == b""
    rejected = p.reply_rejected(SignatureInvalidError("bad"))
    assert rejected.status == 401
    assert json.loads(rejected.body)["code"] == "FAIL"


def test_configuration_needs_a_32_byte_apiv3_key_and_pinned_serials() -> None:
    with pytest.raises(InvalidError, match="apiv3_key"):
        make_provider("wechat", wechat_settings(apiv3_key="short"))
    with pytest.raises(InvalidError, match="platform_keys"):
        make_provider("wechat", wechat_settings(platform_keys={}))
    with pytest.raises(InvalidError, match="unknown WeChat Pay setting 'mch_id'"):
        make_provider("wechat", wechat_settings(mch_id="x"))


# --- API calls --------------------------------------------------------------------------------


def gateway() -> FakeGateway:
    return FakeGateway("wechat", lambda: NOW)


def test_h5_order_posts_fen_and_returns_the_h5_url() -> None:
    gw = gateway()
    gw.routes["POST /v3/pay/transactions/h5"] = lambda r: (
        200,
        b'{"h5_url":"https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx1&package=1"}',
    )
    action = provider(gw).create(
        PayRequest(
            "GV1",
            5000,
            "电费充值",
            "https://park.example/n",
            "https://park.example/r",
            "203.0.113.9",
        )
    )
    assert action.url.startswith("https://wx.tenpay.com/")
    assert "redirect_url=https%3A%2F%2Fpark.example%2Fr" in action.url
    sent = json.loads(gw.requests[0].body)
    assert sent["amount"] == {"total": 5000, "currency": "CNY"}
    assert sent["scene_info"] == {"payer_client_ip": "203.0.113.9", "h5_info": {"type": "Wap"}}
    assert (sent["mchid"], sent["appid"]) == (MCHID, APPID)


def test_jsapi_pay_sign_verifies_with_the_merchant_key() -> None:
    gw = gateway()
    gw.routes["POST /v3/pay/transactions/jsapi"] = lambda r: (
        200,
        b'{"prepay_id":"wx201410272009395522657a690389285100"}',
    )
    fields = provider(gw).create_jsapi(
        PayRequest("GV1", 5000, "电费", "https://park.example/n"), "oUpF8uMuAJO"
    )
    message = f"{APPID}\n{fields.fields['timeStamp']}\n{fields.fields['nonceStr']}\n{fields.fields['package']}\n".encode()
    verify_sha256_rsa(
        load_public_key(public_pem(private_key("merchant_key_pkcs8.pem"))),
        message,
        fields.fields["paySign"],
    )


def test_query_verifies_the_answer_and_maps_states() -> None:
    gw = gateway()
    gw.routes["GET /v3/pay/transactions/out-trade-no/GV1"] = lambda r: (
        200,
        json.dumps(wechat_transaction("GV1", 5000)).encode(),
    )
    event = provider(gw).query("GV1")
    assert (event.state, event.amount_fen) == (PAID, 5000)
    assert gw.requests[0].url.endswith(f"/v3/pay/transactions/out-trade-no/GV1?mchid={MCHID}")
    gw.routes["GET /v3/pay/transactions/out-trade-no/GV1"] = lambda r: (
        404,
        '{"code":"ORDER_NOT_EXIST","message":"订单不存在"}'.encode(),
    )
    assert provider(gw).query("GV1").state == NOT_FOUND


def test_an_unsigned_or_stale_answer_is_a_provider_error() -> None:
    gw = gateway()
    gw.routes["GET /v3/pay/transactions/out-trade-no/GV1"] = lambda r: (
        200,
        json.dumps(wechat_transaction("GV1", 5000)).encode(),
    )
    gw.sign_answers = False
    with pytest.raises(ProviderError, match="signature"):
        provider(gw).query("GV1")
    gw.sign_answers = True
    with pytest.raises(ProviderError):
        provider(gw, now=NOW + 3600).query("GV1")


def test_trade_bill_is_checked_against_its_sha1_then_parsed() -> None:
    bill = (
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\n"
        "`2026-03-01 12:00:09,`wxd678efh567hg6787,`1900000109,`0,`,`4200000925202603012997714292,`GV1,`oUpF8u,`MWEB,`SUCCESS,`OTHERS,`CNY,`50.00,`0.00,`0,`0,`0.00,`0.00,`,`,`电费充值,`,`0.30000,`0.60%,`50.00,`0.00,`\n"
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n"
        "`1,`50.00,`0.00,`0.00,`0.30000,`50.00,`0.00\n"
    ).encode()
    packed = gzip.compress(bill)
    gw = gateway()
    gw.routes["GET /v3/bill/tradebill"] = lambda r: (
        200,
        json.dumps(
            {
                "hash_type": "SHA1",
                "hash_value": hashlib.sha1(bill).hexdigest(),
                "download_url": "https://api.mch.weixin.qq.com/v3/billdownload/file?token=T1",
            }
        ).encode(),
    )
    gw.routes["GET /v3/billdownload/file"] = lambda r: (200, packed)
    rows = provider(gw).bill(dt.date(2026, 3, 1))
    assert [(r.out_trade_no, r.kind, r.amount_fen) for r in rows] == [("GV1", "payment", 5000)]
    assert "bill_date=2026-03-01&bill_type=ALL&tar_type=GZIP" in gw.requests[0].url
    assert gw.requests[1].headers["authorization"].startswith("WECHATPAY2-SHA256-RSA2048 ")
    gw.routes["GET /v3/billdownload/file"] = lambda r: (
        200,
        gzip.compress(bill.replace(b"50.00", b"5.00")),
    )
    with pytest.raises(ProviderError, match="SHA1"):
        provider(gw).bill(dt.date(2026, 3, 1))
