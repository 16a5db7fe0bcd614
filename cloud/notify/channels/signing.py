"""Request signing for the cloud SMS providers and the webhook. Pure functions: the caller passes
the time and the nonce, so the documentation's examples are known-answer tests.

Aliyun V3, ``ACS3-HMAC-SHA256`` (help.aliyun.com, "V3版本请求体&签名机制")::

    CanonicalRequest = METHOD \\n URI \\n CanonicalQuery \\n CanonicalHeaders \\n SignedHeaders \\n
                       hex(sha256(body))
    StringToSign     = "ACS3-HMAC-SHA256" \\n hex(sha256(CanonicalRequest))
    Signature        = hex(HMAC-SHA256(AccessKeySecret, StringToSign))

The query is sorted by name with names and values percent-encoded per RFC 3986 (space is %20,
``~`` stays); the signed headers are ``host``, ``content-type`` and every ``x-acs-*`` header,
lowercase, sorted, each ``name:value\\n``.

Tencent Cloud, ``TC3-HMAC-SHA256`` (cloud.tencent.com/document/api/382/52072, "签名方法 v3")::

    CanonicalRequest = POST \\n / \\n \\n content-type:…\\nhost:…\\n \\n content-type;host \\n
                       hex(sha256(payload))
    StringToSign     = "TC3-HMAC-SHA256" \\n timestamp \\n date/service/tc3_request \\n
                       hex(sha256(CanonicalRequest))
    key              = HMAC(HMAC(HMAC("TC3" + SecretKey, date), service), "tc3_request")
    Signature        = hex(HMAC-SHA256(key, StringToSign))

with ``date`` the UTC date of ``timestamp``.

Webhook (ours): ``X-Gridvend-Signature: v1=<hex HMAC-SHA256(secret, "<ts>." + body)>`` with
``X-Gridvend-Timestamp: <ts>``; a receiver checks it with ``verify_webhook``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import quote

ACS3 = "ACS3-HMAC-SHA256"
TC3 = "TC3-HMAC-SHA256"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding of UTF-8, as Aliyun asks: only ``A-Za-z0-9-_.~`` stay."""
    return quote(value, safe="-_.~")


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{percent_encode(k)}={percent_encode(str(v))}" for k, v in sorted(params.items())
    )


def acs3_date(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def acs3_canonical_request(
    method: str, path: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
) -> tuple[str, str]:
    """``(canonical request, signed headers)``; ``headers`` must hold ``host`` and the
    ``x-acs-*`` headers (names in any case)."""
    lower = {k.lower(): str(v).strip() for k, v in headers.items()}
    signed = sorted(k for k in lower if k in ("host", "content-type") or k.startswith("x-acs-"))
    canonical_headers = "".join(f"{k}:{lower[k]}\n" for k in signed)
    signed_headers = ";".join(signed)
    request = "\n".join(
        (method.upper(), path or "/", canonical_query(query), canonical_headers, signed_headers,
         sha256_hex(body))
    )  # fmt: skip
    return request, signed_headers


def acs3_authorization(
    access_key_id: str,
    secret: str,
    method: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
) -> str:
    request, signed_headers = acs3_canonical_request(method, path, query, headers, body)
    string_to_sign = f"{ACS3}\n{sha256_hex(request.encode())}"
    signature = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{ACS3} Credential={access_key_id},SignedHeaders={signed_headers},Signature={signature}"


def tc3_date(timestamp: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


def tc3_authorization(
    secret_id: str,
    secret_key: str,
    service: str,
    host: str,
    timestamp: int,
    payload: bytes,
    content_type: str = "application/json; charset=utf-8",
) -> str:
    canonical = (
        f"POST\n/\n\ncontent-type:{content_type}\nhost:{host}\n\ncontent-type;host\n"
        f"{sha256_hex(payload)}"
    )
    date = tc3_date(timestamp)
    scope = f"{date}/{service}/tc3_request"
    string_to_sign = f"{TC3}\n{timestamp}\n{scope}\n{sha256_hex(canonical.encode())}"
    key = hmac.new(f"TC3{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    key = hmac.new(key, service.encode(), hashlib.sha256).digest()
    key = hmac.new(key, b"tc3_request", hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"{TC3} Credential={secret_id}/{scope}, SignedHeaders=content-type;host, "
        f"Signature={signature}"
    )


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_webhook(
    secret: str, timestamp: str, body: bytes, signature: str, now: float, tolerance_s: int = 300
) -> bool:
    """True when ``signature`` is ours for this body and ``timestamp`` is within
    ``tolerance_s`` of ``now`` (a replayed old request fails)."""
    if not timestamp.isdigit() or abs(int(timestamp) - now) > tolerance_s:
        return False
    return hmac.compare_digest(webhook_signature(secret, int(timestamp), body), signature)
