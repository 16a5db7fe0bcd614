"""Alipay RSA2: requests signed as Alipay checks them, notifications verified exactly as Alipay
signs them (vectors from openssl), the business checks, and signed synchronous answers."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from urllib.parse import parse_qsl, urlsplit

import pytest

from cloud.errors import InvalidError
from cloud.payments import alipay_codec, make_provider
from cloud.payments.alipay import AlipayProvider
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
    REFUNDED,
    NotificationRequest,
    PayRequest,
)
from cloud.payments.signing import load_public_key, verify_sha256_rsa
from tests.payments.players import (
    APP_ID,
    VECTORS,
    FakeGateway,
    alipay_fields,
    alipay_notification,
    alipay_settings,
    alipay_sign,
    pem,
    private_key,
    public_pem,
)

VECTOR = json.loads((VECTORS / "vectors.json").read_text())
NOON = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp()
ORDERS = {"GV20260301000001": 1230}


def provider(gateway: FakeGateway | None = None, **overrides: object) -> AlipayProvider:
    made = make_provider("alipay", alipay_settings(**overrides), gateway, lambda: NOON)
    assert isinstance(made, AlipayProvider)
    return made


# --- the strings to sign ----------------------------------------------------------------------


def test_request_sign_content_keeps_sign_type_and_drops_sign_and_empty_values() -> None:
    params = {"b": "2", "a": "1", "sign_type": "RSA2", "sign": "zzz", "empty": "", "c": "x y&z"}
    assert alipay_codec.request_sign_content(params) == "a=1&b=2&c=x y&z&sign_type=RSA2"


def test_notification_sign_content_drops_sign_and_sign_type_and_keeps_empty_values() -> None:
    params = {"b": "2", "a": "1", "sign_type": "RSA2", "sign": "zzz", "empty": ""}
    assert alipay_codec.notification_sign_content(params) == "a=1&b=2&empty="


def test_notification_vector_from_openssl_verifies() -> None:
    fields = alipay_fields()
    content = alipay_codec.notification_sign_content(fields)
    assert content.encode() == (VECTORS / "alipay_notify.txt").read_bytes()
    verify_sha256_rsa(
        load_public_key(pem("provider_pub.pem")), content.encode(), VECTOR["alipay_notify_sign"]
    )


def test_wap_pay_request_is_signed_as_openssl_signs_it() -> None:
    p = provider()
    biz = {
        "out_trade_no": "GV20260301000001",
        "total_amount": "12.30",
        "subject": "电费充值 A-101",
        "product_code": "QUICK_WAP_WAY",
        "timeout_express": "30m",
    }
    params = p.signed_params(
        "alipay.trade.wap.pay", biz, notify_url="https://park.example/pay/notify/alipay"
    )
    assert (
        alipay_codec.request_sign_content(params).encode()
        == (VECTORS / "alipay_request.txt").read_bytes()
    )
    assert params["sign"] == VECTOR["alipay_request_sign"]


def test_create_redirects_to_the_gateway_with_a_verifiable_signature_and_exact_amount() -> None:
    action = provider().create(
        PayRequest(
            "GV20260301000001",
            5000,
            "电费充值 A-101",
            "https://park.example/n",
            "https://park.example/r",
        )
    )
    assert action.kind == "redirect"
    url = urlsplit(action.url)
    assert f"{url.scheme}://{url.netloc}{url.path}" == "https://openapi.alipay.com/gateway.do"
    params = dict(parse_qsl(url.query, keep_blank_values=True))
    biz = json.loads(params["biz_content"])
    assert biz["total_amount"] == "50.00"
    assert biz["product_code"] == "QUICK_WAP_WAY"
    assert biz["quit_url"] == "https://park.example/r"
    assert params["notify_url"] == "https://park.example/n"
    assert params["charset"] == "utf-8"
    assert params["timestamp"] == "2026-03-01 12:00:00"  # Beijing time
    verify_sha256_rsa(
        load_public_key(_app_public()),
        alipay_codec.request_sign_content(params).encode(),
        params["sign"],
    )


def _app_public() -> str:

    return public_pem(private_key("merchant_key_pkcs1.pem"))


# --- notifications ----------------------------------------------------------------------------


def test_a_true_notification_is_a_paid_event_for_the_order() -> None:
    event = provider().verify_notification(
        alipay_notification(alipay_sign(alipay_fields())), ORDERS.get
    )
    assert (event.state, event.out_trade_no, event.amount_fen) == (PAID, "GV20260301000001", 1230)
    assert event.trade_no == "2026030122001424330501234567"
    assert event.occurred_at == dt.datetime(2026, 3, 1, 12, 0, 9, tzinfo=event.occurred_at.tzinfo)
    assert event.occurred_at.utcoffset() == dt.timedelta(hours=8)


def test_trade_finished_is_paid_too_and_closed_is_not() -> None:
    finished = alipay_sign(alipay_fields(trade_status="TRADE_FINISHED"))
    assert provider().verify_notification(alipay_notification(finished), ORDERS.get).state == PAID
    closed = alipay_sign(alipay_fields(trade_status="TRADE_CLOSED", gmt_payment=""))
    assert provider().verify_notification(alipay_notification(closed), ORDERS.get).state == CLOSED


def test_a_refund_notification_is_not_a_second_payment() -> None:
    fields = alipay_sign(
        alipay_fields(refund_fee="12.30", gmt_refund="2026-03-02 09:00:00", out_biz_no="R1")
    )
    assert provider().verify_notification(alipay_notification(fields), ORDERS.get).state == REFUNDED


def test_empty_values_are_part_of_what_alipay_signed() -> None:
    # Signed with body="" and passback_params="" included: dropping empties would fail here.
    fields = alipay_sign(alipay_fields())
    assert fields["body"] == ""
    assert fields["passback_params"] == ""
    provider().verify_notification(alipay_notification(fields), ORDERS.get)
    content_without_empties = alipay_codec.request_sign_content(
        {k: v for k, v in fields.items() if k != "sign_type"}
    )
    with pytest.raises(SignatureInvalidError):
        verify_sha256_rsa(
            load_public_key(pem("provider_pub.pem")),
            content_without_empties.encode(),
            fields["sign"],
        )


def test_a_tampered_amount_is_a_signature_error() -> None:
    fields = alipay_sign(alipay_fields())
    fields["total_amount"] = "1230.00"
    with pytest.raises(SignatureInvalidError):
        provider().verify_notification(
            alipay_notification(fields), {"GV20260301000001": 123000}.get
        )


def test_signed_with_another_key_is_a_signature_error() -> None:

    fields = alipay_sign(alipay_fields(), key=private_key("merchant_key_pkcs1.pem"))
    with pytest.raises(SignatureInvalidError):
        provider().verify_notification(alipay_notification(fields), ORDERS.get)


def test_html_escaped_fund_bill_list_fails_verification() -> None:
    fields = alipay_sign(alipay_fields())
    fields["fund_bill_list"] = fields["fund_bill_list"].replace('"', "&quot;")
    with pytest.raises(SignatureInvalidError):
        provider().verify_notification(alipay_notification(fields), ORDERS.get)


def test_a_gbk_encoded_notification_is_malformed() -> None:
    with pytest.raises(NotificationMalformedError):
        provider().verify_notification(
            alipay_notification(alipay_sign(alipay_fields()), encoding="gbk"), ORDERS.get
        )


def test_a_repeated_field_is_malformed() -> None:
    body = alipay_notification(alipay_sign(alipay_fields())).body + b"&total_amount=0.01"
    with pytest.raises(NotificationMalformedError, match="repeats"):
        provider().verify_notification(NotificationRequest({}, body), ORDERS.get)


@pytest.mark.parametrize("body", [b"", b"garbage", b"%ZZ=1", b"\xff\xfe", b"a=1&&b"])
def test_malformed_bodies_are_rejected(body: bytes) -> None:
    with pytest.raises((NotificationMalformedError, SignatureInvalidError)):
        provider().verify_notification(NotificationRequest({}, body), ORDERS.get)


def test_sign_type_rsa1_is_refused() -> None:
    fields = alipay_sign(alipay_fields())
    fields["sign_type"] = "RSA"
    with pytest.raises(SignatureInvalidError, match="RSA2"):
        provider().verify_notification(alipay_notification(fields), ORDERS.get)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"app_id": "2021000000000001"}, "app_id"), ({"seller_id": "2088000000000000"}, "seller_id")],
)
def test_signed_but_for_another_app_or_merchant_is_a_mismatch(
    change: dict[str, str], field: str
) -> None:
    with pytest.raises(NotificationMismatchError) as caught:
        provider().verify_notification(
            alipay_notification(alipay_sign(alipay_fields(**change))), ORDERS.get
        )
    assert caught.value.field == field


def test_signed_but_unknown_order_or_other_amount_is_a_mismatch() -> None:
    note = alipay_notification(alipay_sign(alipay_fields(out_trade_no="GV-NOT-OURS")))
    with pytest.raises(NotificationMismatchError, match="not an order of ours"):
        provider().verify_notification(note, ORDERS.get)
    note = alipay_notification(alipay_sign(alipay_fields(amount="0.01")))
    with pytest.raises(NotificationMismatchError, match="1230 fen"):
        provider().verify_notification(note, ORDERS.get)


def test_a_signed_but_inexact_amount_is_malformed() -> None:
    note = alipay_notification(alipay_sign(alipay_fields(amount="12.301")))
    with pytest.raises(NotificationMalformedError) as caught:
        provider().verify_notification(note, ORDERS.get)
    assert caught.value.field == "total_amount"


def test_replies_are_the_bare_word_success_or_not() -> None:
    p = provider()
    assert p.reply_ok().body == b"success"
    assert p.reply_ok().status == 200
    assert p.reply_rejected(SignatureInvalidError("x")).body != b"success"


def test_configuration_rejects_unknown_and_missing_keys() -> None:
    with pytest.raises(InvalidError, match="appid"):
        make_provider("alipay", alipay_settings(appid="typo"))
    settings = alipay_settings()
    del settings["seller_id"]
    with pytest.raises(InvalidError, match="seller_id"):
        make_provider("alipay", settings)


# --- synchronous answers ----------------------------------------------------------------------


def gateway() -> FakeGateway:
    return FakeGateway("alipay", lambda: NOON)


def test_query_answer_is_verified_over_its_raw_json_even_with_braces_in_strings() -> None:
    gw = gateway()
    # Odd spacing and a brace inside a string: only the raw text verifies.
    raw = '{ "code":"10000","msg":"Success","trade_no":"2026030122001424330501234567","out_trade_no":"GV20260301000001","trade_status":"TRADE_SUCCESS","total_amount":"12.30","send_pay_date":"2026-03-01 12:00:09","subject":"a}b{c" }'
    gw.routes["alipay.trade.query"] = lambda r: (
        200,
        gw.alipay_answer("alipay_trade_query_response", {}, raw=raw),
    )
    event = provider(gw).query("GV20260301000001")
    assert (event.state, event.amount_fen) == (PAID, 1230)
    sent = dict(parse_qsl(gw.requests[0].body.decode()))
    assert sent["method"] == "alipay.trade.query"
    assert json.loads(sent["biz_content"]) == {"out_trade_no": "GV20260301000001"}


def test_a_tampered_or_unsigned_answer_is_a_provider_error() -> None:
    gw = gateway()
    good = gw.alipay_answer(
        "alipay_trade_query_response",
        {
            "code": "10000",
            "out_trade_no": "GV20260301000001",
            "trade_status": "TRADE_SUCCESS",
            "total_amount": "12.30",
        },
    )
    gw.routes["alipay.trade.query"] = lambda r: (200, good.replace(b"12.30", b"99.99"))
    with pytest.raises(ProviderError, match="signature"):
        provider(gw).query("GV20260301000001")
    gw.routes["alipay.trade.query"] = lambda r: (
        200,
        b'{"error_response":{"code":"40002","msg":"Invalid Arguments"}}',
    )
    with pytest.raises(ProviderError):
        provider(gw).query("GV20260301000001")


def test_a_trade_never_scanned_is_not_found_and_other_refusals_raise() -> None:
    gw = gateway()
    gw.routes["alipay.trade.query"] = lambda r: (
        200,
        gw.alipay_answer(
            "alipay_trade_query_response",
            {
                "code": "40004",
                "msg": "Business Failed",
                "sub_code": "ACQ.TRADE_NOT_EXIST",
                "sub_msg": "交易不存在",
            },
        ),
    )
    assert provider(gw).query("GV20260301000001").state == NOT_FOUND
    gw.routes["alipay.trade.query"] = lambda r: (
        200,
        gw.alipay_answer(
            "alipay_trade_query_response",
            {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.SYSTEM_ERROR"},
        ),
    )
    with pytest.raises(ProviderError, match=r"ACQ\.SYSTEM_ERROR"):
        provider(gw).query("GV20260301000001")


def test_precreate_close_refund_and_bill_are_thin_signed_requests() -> None:

    gw = gateway()
    gw.routes["alipay.trade.precreate"] = lambda r: (
        200,
        gw.alipay_answer(
            "alipay_trade_precreate_response",
            {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": "GV1",
                "qr_code": "https://qr.alipay.com/bax03431",
            },
        ),
    )
    gw.routes["alipay.trade.close"] = lambda r: (
        200,
        gw.alipay_answer("alipay_trade_close_response", {"code": "10000", "msg": "Success"}),
    )
    gw.routes["alipay.trade.refund"] = lambda r: (
        200,
        gw.alipay_answer(
            "alipay_trade_refund_response",
            {"code": "10000", "msg": "Success", "refund_fee": "12.30"},
        ),
    )
    gw.routes["alipay.data.dataservice.bill.downloadurl.query"] = lambda r: (
        200,
        gw.alipay_answer(
            "alipay_data_dataservice_bill_downloadurl_query_response",
            {
                "code": "10000",
                "msg": "Success",
                "bill_download_url": "http://dwbillcenter.alipay.com/downloadBillFile.resource?x=1",
            },
        ),
    )
    detail = "#支付宝业务明细查询\n支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,订单金额（元）\n2026030122001,GV1,交易,电费,2026-03-01 12:00:05,2026-03-01 12:00:09,12.30\n#-----业务明细列表结束-----\n"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("2088101106499364_20260301_业务明细.csv", detail.encode("gbk"))
    p = provider(gw)
    gw.routes["GET dwbillcenter"] = lambda r: (200, archive.getvalue())
    assert (
        p.precreate(PayRequest("GV1", 1230, "电费", "https://park.example/n")).url
        == "https://qr.alipay.com/bax03431"
    )
    p.close("GV1")
    assert p.refund("GV1", 1230, "GV1-R1")["refund_fee"] == "12.30"
    rows = p.bill(dt.date(2026, 3, 1))
    assert [(r.out_trade_no, r.kind, r.amount_fen) for r in rows] == [("GV1", "payment", 1230)]
    methods = [
        dict(parse_qsl(r.body.decode())).get("method") for r in gw.requests if r.method == "POST"
    ]
    assert methods == [
        "alipay.trade.precreate",
        "alipay.trade.close",
        "alipay.trade.refund",
        "alipay.data.dataservice.bill.downloadurl.query",
    ]
    refund_biz = json.loads(dict(parse_qsl(gw.requests[2].body.decode()))["biz_content"])
    assert refund_biz == {
        "out_trade_no": "GV1",
        "refund_amount": "12.30",
        "out_request_no": "GV1-R1",
    }
    for request in gw.requests:
        if request.method == "POST":
            params = dict(parse_qsl(request.body.decode(), keep_blank_values=True))
            assert params["app_id"] == APP_ID
            verify_sha256_rsa(
                load_public_key(_app_public()),
                alipay_codec.request_sign_content(params).encode(),
                params["sign"],
            )
