"""WeChat Pay API v3 signing rules as pure functions (no I/O; the clock is an argument).

* **Requests** carry ``Authorization: WECHATPAY2-SHA256-RSA2048 mchid="…",nonce_str="…",
  signature="…",timestamp="…",serial_no="…"``; the signature is SHA256withRSA with the
  merchant's API key over five lines, each ending in ``\\n`` (the last too):
  ``METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n``, URL being the path plus ``?query`` without the
  host, body the exact bytes sent ("" for GET). (签名生成, wechatpay4_0.)
* **Callbacks and answers** are signed by WeChat Pay over three lines,
  ``timestamp\\nnonce\\nbody\\n``, body the *raw* bytes received (re-serialised JSON fails);
  the key is the platform certificate or WeChat Pay public key named by ``Wechatpay-Serial``,
  and only the serials configured here are accepted (an unknown serial never triggers a
  download). ``Wechatpay-Signature`` values starting ``WECHATPAY/SIGNTEST/`` are WeChat's
  deliberate probes: they must fail, and fail they do. A timestamp more than 5 minutes away
  from our clock is stale (replays).
* **resource** (the callback's payload) is ``AEAD_AES_256_GCM`` with the 32-byte APIv3 key:
  ``nonce`` and ``associated_data`` as UTF-8, ``ciphertext`` = base64(ciphertext ‖ 16-byte tag).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cloud.payments.errors import (
    NotificationMalformedError,
    NotificationStaleError,
    SignatureInvalidError,
)
from cloud.payments.signing import sign_sha256_rsa, verify_sha256_rsa

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
SIGNTEST_PREFIX = "WECHATPAY/SIGNTEST/"
FRESHNESS_S = 5 * 60


def _text(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def request_message(method: str, url: str, timestamp: str, nonce: str, body: bytes | str) -> bytes:
    """The five lines a request signs. ``url``: path and query, no scheme or host."""
    if not url.startswith("/"):
        raise ValueError(f"the signed URL is the path without the host, got {url!r}")
    head = f"{method.upper()}\n{url}\n{timestamp}\n{nonce}\n".encode()
    return head + _text(body) + b"\n"


def authorization(
    *,
    mchid: str,
    serial_no: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    url: str,
    body: bytes | str,
    timestamp: str,
    nonce: str,
) -> str:
    """The ``Authorization`` header value for one request."""
    signature = sign_sha256_rsa(private_key, request_message(method, url, timestamp, nonce, body))
    return (
        f'{SCHEMA} mchid="{mchid}",nonce_str="{nonce}",signature="{signature}",'
        f'timestamp="{timestamp}",serial_no="{serial_no}"'
    )


def callback_message(timestamp: str, nonce: str, body: bytes) -> bytes:
    """The three lines WeChat Pay signs in a callback or an API answer."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def verify_signed(
    headers: Mapping[str, str],
    body: bytes,
    platform_keys: Mapping[str, rsa.RSAPublicKey],
    now_s: float,
    freshness_s: int = FRESHNESS_S,
) -> str:
    """Check a callback's or an answer's signature headers (names lower-cased) against the
    raw ``body``; returns the serial used. Raises ``SignatureInvalidError`` (probe, unknown serial,
    bad signature), ``NotificationStaleError`` or ``NotificationMalformedError``."""
    signature = headers.get("wechatpay-signature", "")
    serial = headers.get("wechatpay-serial", "")
    timestamp = headers.get("wechatpay-timestamp", "")
    nonce = headers.get("wechatpay-nonce", "")
    kind = headers.get("wechatpay-signature-type", SCHEMA)
    if signature.startswith(SIGNTEST_PREFIX):
        raise SignatureInvalidError("a WECHATPAY/SIGNTEST probe signature: rejected as it must be")
    if kind != SCHEMA:
        raise SignatureInvalidError(
            f"signature type {kind!r} is not {SCHEMA}", "wechatpay-signature-type"
        )
    for name, value in (
        ("wechatpay-signature", signature),
        ("wechatpay-serial", serial),
        ("wechatpay-timestamp", timestamp),
        ("wechatpay-nonce", nonce),
    ):
        if not value:
            raise SignatureInvalidError(f"the {name} header is missing", name)
    key = platform_keys.get(serial)
    if key is None:
        raise SignatureInvalidError(
            f"serial {serial!r} is not a WeChat Pay key we trust", "wechatpay-serial"
        )
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise NotificationMalformedError(
            f"timestamp {timestamp!r} is not Unix seconds", "wechatpay-timestamp"
        )
    verify_sha256_rsa(key, callback_message(timestamp, nonce, body), signature)
    if abs(now_s - int(timestamp)) > freshness_s:
        raise NotificationStaleError(
            f"timestamp {timestamp} is more than {freshness_s} s from now ({int(now_s)})",
            "wechatpay-timestamp",
        )
    return serial


def decrypt_resource(apiv3_key: bytes, resource: Mapping[str, object]) -> bytes:
    """The plaintext of a callback's ``resource`` (AEAD_AES_256_GCM with the APIv3 key)."""
    if resource.get("algorithm") != "AEAD_AES_256_GCM":
        raise NotificationMalformedError(
            f"resource algorithm {resource.get('algorithm')!r} is not AEAD_AES_256_GCM",
            "resource.algorithm",
        )
    nonce, ad, ciphertext = (
        resource.get("nonce"),
        resource.get("associated_data", ""),
        resource.get("ciphertext"),
    )
    if not isinstance(nonce, str) or not isinstance(ciphertext, str) or not isinstance(ad, str):
        raise NotificationMalformedError(
            "resource needs nonce, ciphertext and associated_data text", "resource"
        )
    try:
        sealed = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise NotificationMalformedError(
            "resource.ciphertext is not base64", "resource.ciphertext"
        ) from exc
    try:
        return AESGCM(apiv3_key).decrypt(nonce.encode(), sealed, ad.encode())
    except (InvalidTag, ValueError) as exc:
        raise SignatureInvalidError(
            "resource fails AES-GCM authentication (APIv3 key or data)"
        ) from exc


def encrypt_resource(
    apiv3_key: bytes, plaintext: bytes, nonce: str, associated_data: str
) -> dict[str, str]:
    """The provider's side of ``decrypt_resource``: what WeChat Pay puts in ``resource``
    (used by the sandbox and by tests that play WeChat)."""
    sealed = AESGCM(apiv3_key).encrypt(nonce.encode(), plaintext, associated_data.encode())
    return {
        "algorithm": "AEAD_AES_256_GCM",
        "ciphertext": base64.b64encode(sealed).decode(),
        "associated_data": associated_data,
        "nonce": nonce,
    }


def jsapi_pay_sign(
    appid: str, timestamp: str, nonce: str, prepay_id: str, key: rsa.RSAPrivateKey
) -> str:
    """``paySign`` for ``WeixinJSBridge.invoke('getBrandWCPayRequest')``: SHA256withRSA over
    ``appId\\ntimeStamp\\nnonceStr\\nprepay_id=…\\n``."""
    message = f"{appid}\n{timestamp}\n{nonce}\nprepay_id={prepay_id}\n".encode()
    return sign_sha256_rsa(key, message)
