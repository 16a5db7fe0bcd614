"""Aliyun SMS, Tencent Cloud SMS and the webhook against local servers that verify their
signatures as the providers do, and fail on command: time out, 5xx, reject a template, limit,
run out of balance."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from cloud.notify.channels import build
from cloud.notify.channels.aliyun import AliyunSms
from cloud.notify.channels.base import DEGRADED, DOWN, OK, Message
from cloud.notify.channels.tencent import TencentSms
from cloud.notify.channels.webhook import Webhook
from cloud.notify.errors import ChannelDown, ConfigError, Rejected, RetryLater
from tests.notify.fake_cloud import FakeAliyun, FakeTencent, FakeWebhook

SIGN = "园区电费"
ALARM = Message(
    key="outbox-7",
    to="+8613800138000",
    text="【园区电费】单元A-101余额12.34元，已低于报警值1。",
    template="alarm1",
    params={"unit": "A-101", "balance": "12.34"},
)


def run(coro: Any) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, 30)

    return asyncio.run(bounded())


@pytest.fixture(scope="module")
def aliyun_server() -> Iterator[FakeAliyun]:
    with FakeAliyun({"AK-test": "secret-a"}, {"SMS_100": ["unit", "balance"]}) as server:
        yield server


@pytest.fixture(scope="module")
def tencent_server() -> Iterator[FakeTencent]:
    with FakeTencent({"AKID-test": "secret-t"}, {"200001": 2}) as server:
        yield server


@pytest.fixture(autouse=True)
def _reset_modes(aliyun_server: FakeAliyun, tencent_server: FakeTencent) -> None:
    for server in (aliyun_server, tencent_server):
        server.mode = "ok"
        server.requests.clear()


def aliyun(server: FakeAliyun, **extra: Any) -> AliyunSms:
    settings = {
        "access_key_id": "AK-test",
        "access_key_secret": "secret-a",
        "sign_name": SIGN,
        "templates": {"alarm1": {"code": "SMS_100", "params": ["unit", "balance"]}},
        "endpoint": server.url,
        "read_timeout_ms": 400,
        **extra,
    }
    return AliyunSms("aliyun", **settings)


def tencent(server: FakeTencent, **extra: Any) -> TencentSms:
    settings = {
        "secret_id": "AKID-test",
        "secret_key": "secret-t",
        "sdk_app_id": "1400000001",
        "sign_name": SIGN,
        "templates": {"alarm1": {"code": "200001", "params": ["unit", "balance"]}},
        "endpoint": server.url,
        "read_timeout_ms": 400,
        **extra,
    }
    return TencentSms("tencent", **settings)


# ---------------------------------------------------------------- Aliyun


def test_aliyun_sendsms_is_signed_as_aliyun_checks_it_and_returns_the_bizid(
    aliyun_server: FakeAliyun,
) -> None:
    receipt = run(aliyun(aliyun_server).send(ALARM))
    assert receipt.provider_id.startswith("biz-")
    assert not receipt.delivered
    [seen] = aliyun_server.requests
    assert seen.verified
    assert seen.query["SignName"] == SIGN
    assert seen.query["TemplateCode"] == "SMS_100"
    assert json.loads(seen.query["TemplateParam"]) == {"unit": "A-101", "balance": "12.34"}
    assert seen.query["OutId"] == "outbox-7"
    assert seen.query["PhoneNumbers"] == "+8613800138000"
    assert seen.headers["x-acs-action"] == "SendSms"


def test_aliyun_wrong_secret_is_a_channel_down_with_the_providers_code(
    aliyun_server: FakeAliyun,
) -> None:
    channel = aliyun(aliyun_server, access_key_secret="not-it")
    with pytest.raises(ChannelDown) as err:
        run(channel.send(ALARM))
    assert err.value.code == "SignatureDoesNotMatch"
    assert channel.health()["state"] == DOWN
    assert not aliyun_server.requests[0].verified


def test_aliyun_reused_nonce_is_refused_by_the_server(aliyun_server: FakeAliyun) -> None:
    channel = AliyunSms(
        "aliyun", nonce=lambda: "same-nonce-every-time", **aliyun(aliyun_server).settings
    )
    run(channel.send(ALARM))
    with pytest.raises(RetryLater) as err:  # an unknown code: retried within limits
        run(channel.send(ALARM))
    assert err.value.code == "SignatureNonceUsed"


@pytest.mark.parametrize(
    ("mode", "error", "code"),
    [
        ("reject_template", Rejected, "isv.SMS_TEMPLATE_ILLEGAL"),
        ("limit", RetryLater, "isv.BUSINESS_LIMIT_CONTROL"),
        ("no_balance", ChannelDown, "isv.AMOUNT_NOT_ENOUGH"),
        ("5xx", RetryLater, "ServiceUnavailable"),
    ],
)
def test_aliyun_failures_map_to_the_right_error(
    aliyun_server: FakeAliyun, mode: str, error: type, code: str
) -> None:
    aliyun_server.mode = mode
    with pytest.raises(error) as err:
        run(aliyun(aliyun_server).send(ALARM))
    assert err.value.code == code
    assert aliyun_server.requests[0].verified


def test_aliyun_timeout_is_retried_and_flagged_uncertain(aliyun_server: FakeAliyun) -> None:
    aliyun_server.mode = "timeout"
    channel = aliyun(aliyun_server)
    t0 = time.monotonic()
    with pytest.raises(RetryLater) as err:
        run(channel.send(ALARM))
    assert time.monotonic() - t0 < 1.0  # the read timeout, not the server's delay
    assert err.value.uncertain
    assert err.value.code == "timeout"


def test_a_template_with_no_approved_code_is_rejected_before_any_request(
    aliyun_server: FakeAliyun,
) -> None:
    other = Message(key="k", to="+8613800138000", text="…", template="arrears", params={})
    with pytest.raises(Rejected, match="no approved template for 'arrears'"):
        run(aliyun(aliyun_server).send(other))
    assert aliyun_server.requests == []


def test_a_missing_parameter_is_rejected_naming_it(aliyun_server: FakeAliyun) -> None:
    short = Message(key="k", to="+8613800138000", text="…", template="alarm1", params={})
    with pytest.raises(Rejected, match="needs unit, balance"):
        run(aliyun(aliyun_server).send(short))


def test_connection_refused_is_a_clean_retry_and_three_make_the_channel_degraded() -> None:
    channel = AliyunSms(
        "aliyun",
        access_key_id="a",
        access_key_secret="b",
        sign_name=SIGN,
        templates={"alarm1": "SMS_1"},
        endpoint="http://127.0.0.1:9/",
        connect_timeout_ms=300,
    )
    for _ in range(3):
        with pytest.raises(RetryLater) as err:
            run(channel.send(ALARM))
        assert not err.value.uncertain
    assert channel.health()["state"] == DEGRADED


# ---------------------------------------------------------------- Tencent


def test_tencent_sendsms_is_signed_as_tencent_checks_it_and_returns_the_serial(
    tencent_server: FakeTencent,
) -> None:
    channel = tencent(tencent_server)
    receipt = run(channel.send(ALARM))
    assert receipt.provider_id.startswith("serial-")
    [seen] = tencent_server.requests
    assert seen.verified
    assert seen.extra["TemplateParamSet"] == ["A-101", "12.34"]  # the template's order
    assert seen.extra["PhoneNumberSet"] == ["+8613800138000"]
    assert seen.extra["SessionContext"] == "outbox-7"
    assert seen.extra["SignName"] == SIGN
    assert channel.health()["state"] == OK


def test_tencent_national_number_is_sent_in_e164(tencent_server: FakeTencent) -> None:
    local = Message("k", "13800138000", "…", "alarm1", {"unit": "A", "balance": "1"})
    run(tencent(tencent_server).send(local))
    assert tencent_server.requests[0].extra["PhoneNumberSet"] == ["+8613800138000"]


def test_tencent_clock_off_by_more_than_five_minutes_is_signature_expire(
    tencent_server: FakeTencent,
) -> None:
    channel = TencentSms(
        "tencent", clock=lambda: time.time() - 600, **tencent(tencent_server).settings
    )
    with pytest.raises(ChannelDown) as err:
        run(channel.send(ALARM))
    assert err.value.code == "AuthFailure.SignatureExpire"


def test_tencent_wrong_key_is_signature_failure(tencent_server: FakeTencent) -> None:
    with pytest.raises(ChannelDown) as err:
        run(tencent(tencent_server, secret_key="wrong").send(ALARM))
    assert err.value.code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    ("mode", "error", "code"),
    [
        ("reject_template", Rejected, "FailedOperation.TemplateIncorrectOrUnapproved"),
        ("limit", RetryLater, "LimitExceeded.PhoneNumberThirtySecondLimit"),
        ("no_balance", ChannelDown, "FailedOperation.InsufficientBalanceInSmsPackage"),
        ("5xx", RetryLater, "HTTP 502"),
    ],
)
def test_tencent_failures_map_to_the_right_error(
    tencent_server: FakeTencent, mode: str, error: type, code: str
) -> None:
    tencent_server.mode = mode
    with pytest.raises(error) as err:
        run(tencent(tencent_server).send(ALARM))
    assert err.value.code == code


def test_tencent_timeout_is_uncertain(tencent_server: FakeTencent) -> None:
    tencent_server.mode = "timeout"
    with pytest.raises(RetryLater) as err:
        run(tencent(tencent_server).send(ALARM))
    assert err.value.uncertain


# ---------------------------------------------------------------- webhook


def test_webhook_posts_signed_json_and_a_2xx_is_delivered() -> None:
    with FakeWebhook("hook-secret") as server:
        channel = Webhook("webhook", url=server.url, secret="hook-secret")
        receipt = run(channel.send(ALARM))
        assert receipt.delivered
        assert receipt.provider_id == "hook-1"
        [seen] = server.requests
        assert seen.verified
        assert seen.extra["id"] == "outbox-7"
        assert seen.extra["params"] == {"unit": "A-101", "balance": "12.34"}
        assert seen.extra["text"] == ALARM.text


@pytest.mark.parametrize(
    ("status", "secret", "error"),
    [(None, "wrong", ChannelDown), (422, "s", Rejected), (429, "s", RetryLater)],
)
def test_webhook_answers_map_to_errors(status: int | None, secret: str, error: type) -> None:
    with FakeWebhook("s", status=status) as server, pytest.raises(error):
        run(Webhook("webhook", url=server.url, secret=secret).send(ALARM))


def test_webhook_5xx_is_retried() -> None:
    with FakeWebhook("s") as server:
        server.mode = "5xx"
        with pytest.raises(RetryLater) as err:
            run(Webhook("webhook", url=server.url, secret="s").send(ALARM))
        assert err.value.code == "HTTP 500"


# ---------------------------------------------------------------- one interface


def test_every_channel_is_built_from_settings_and_unknown_keys_are_named() -> None:
    assert build("webhook", "hook", {"url": "http://127.0.0.1:1/", "secret": "s"}).kind == "webhook"
    with pytest.raises(ConfigError, match=r"channels\.hook\.kind"):
        build("carrier-pigeon", "hook", {})
    with pytest.raises(ConfigError, match=r"channels\.ali\.sign"):
        build("aliyun", "ali", {"access_key_id": "a", "access_key_secret": "b",
                                "sign_name": "c", "templates": {}, "sign": "x"})  # fmt: skip
    with pytest.raises(ConfigError, match=r"channels\.ali\.templates\.alarm1\.param"):
        build("aliyun", "ali", {"access_key_id": "a", "access_key_secret": "b",
                                "sign_name": "c",
                                "templates": {"alarm1": {"code": "S", "param": []}}})  # fmt: skip
