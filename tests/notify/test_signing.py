"""Known-answer tests of the providers' signing, from their own documentation examples."""

from __future__ import annotations

import time

from cloud.notify.channels import signing

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _aliyun_example(date: str, nonce: str) -> tuple[str, str]:
    # help.aliyun.com "V3版本请求体&签名机制", 签名示例: ECS RunInstances, secret YourAccessKeySecret.
    headers = {
        "host": "ecs.cn-shanghai.aliyuncs.com",
        "x-acs-action": "RunInstances",
        "x-acs-version": "2014-05-26",
        "x-acs-date": date,
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": EMPTY_SHA256,
    }
    query = {
        "ImageId": "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
        "RegionId": "cn-shanghai",
    }
    request, _ = signing.acs3_canonical_request("POST", "/", query, headers, b"")
    auth = signing.acs3_authorization(
        "YourAccessKeyId", "YourAccessKeySecret", "POST", "/", query, headers, b""
    )
    return signing.sha256_hex(request.encode()), auth


def test_aliyun_v3_signature_matches_the_documented_example() -> None:
    hashed, auth = _aliyun_example("2023-10-26T10:22:32Z", "3156853299f313e23d1673dc12e1703d")
    assert hashed == "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    assert auth == (
        "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;"
        "x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,"
        "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    )


def test_aliyun_v3_signature_matches_the_request_header_table_example() -> None:
    # The same page's (and the ROA page's) header table: 09:01:01Z, nonce d410180a…
    _, auth = _aliyun_example("2023-10-26T09:01:01Z", "d410180a5abf7fe235dd9b74aca91fc0")
    assert auth.endswith(
        "Signature=e521358f7776c97df52e6b2891a8bc73026794a071b50c3323388c4e0df64804"
    )


def test_aliyun_percent_encoding_keeps_only_the_rfc3986_unreserved_characters() -> None:
    assert signing.percent_encode("a b*c~d") == "a%20b%2Ac~d"
    assert signing.percent_encode("园区") == "%E5%9B%AD%E5%8C%BA"
    assert signing.canonical_query({"b": "2", "A": "1", "a": "{}"}) == "A=1&a=%7B%7D&b=2"


def test_tencent_tc3_signature_matches_the_documented_example() -> None:
    # cloud.tencent.com "签名方法 v3": CVM DescribeInstances, 1551113065, the "未命名" filter.
    payload = (
        b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    assert signing.sha256_hex(payload) == (
        "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    auth = signing.tc3_authorization(
        "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
        "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
        "cvm",
        "cvm.tencentcloudapi.com",
        1551113065,
        payload,
    )
    assert auth == (
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/"
        "tc3_request, SignedHeaders=content-type;host, "
        "Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    )


def test_tencent_date_is_the_utc_date_of_the_timestamp() -> None:
    # 1551113065 is 2019-02-26 00:44:25 in Beijing and still 2019-02-25 in UTC.
    assert signing.tc3_date(1551113065) == "2019-02-25"


def test_webhook_signature_verifies_and_refuses_tampering_and_replays() -> None:
    now = int(time.time())
    body = b'{"id":"42","text":"\xe4\xbd\xa0\xe5\xa5\xbd"}'
    sig = signing.webhook_signature("s3cret", now, body)
    assert sig.startswith("v1=")
    assert signing.verify_webhook("s3cret", str(now), body, sig, now)
    assert not signing.verify_webhook("s3cret", str(now), body + b" ", sig, now)
    assert not signing.verify_webhook("other", str(now), body, sig, now)
    assert not signing.verify_webhook("s3cret", str(now), body, sig, now + 301)
    assert not signing.verify_webhook("s3cret", "soon", body, sig, now)
