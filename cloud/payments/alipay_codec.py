"""Alipay's RSA2 signing rules as pure functions (no I/O, no clock).

Three different "strings to sign", and mixing them up is the classic Alipay bug:

1. **Requests** (``request_sign_content``): every parameter except ``sign``, *including*
   ``sign_type``, *skipping empty values*, sorted by key, joined ``k=v`` with ``&``, values raw
   (not URL-encoded). The Java SDK's ``AlipaySignature.getSignContent``.
2. **Asynchronous notifications** (``notification_sign_content``): every received parameter
   except ``sign`` *and* ``sign_type``, *keeping empty values*, sorted, ``k=v&``, over the
   values URL-decoded once. The Java SDK's ``getSignCheckContentV1``.
3. **Synchronous responses** (``response_sign_content``): the raw JSON text of the
   ``<method>_response`` member exactly as it arrived, byte for byte (re-serialising changes
   spacing and escapes and breaks the signature).

All three are signed SHA256withRSA (``cloud.payments.signing``): requests with the app's
private key, notifications and responses by Alipay's key.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import parse_qsl

from cloud.payments.errors import NotificationMalformedError, ProviderError


def request_sign_content(params: Mapping[str, str]) -> str:
    """The string an Alipay *request* signs (rule 1)."""
    return "&".join(
        f"{key}={value}"
        for key, value in sorted(params.items())
        if key != "sign" and value is not None and value != ""
    )


def notification_sign_content(params: Mapping[str, str]) -> str:
    """The string Alipay signed in an asynchronous *notification* (rule 2)."""
    return "&".join(
        f"{key}={value}"
        for key, value in sorted(params.items())
        if key not in ("sign", "sign_type")
    )


def parse_form(body: bytes) -> dict[str, str]:
    """The notification's ``application/x-www-form-urlencoded`` body, decoded exactly once as
    UTF-8 (we always request ``charset=utf-8``, which sets the notification's encoding).

    Raises ``NotificationMalformedError`` for bytes that are not UTF-8 percent-encoding, a pair
    without ``=``, or a key given twice (which value was signed would be a guess)."""
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError as exc:
        raise NotificationMalformedError("the notification body is not URL-encoded ASCII") from exc
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotificationMalformedError(
            f"the notification body is not a valid form: {exc}"
        ) from exc
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise NotificationMalformedError(f"the notification repeats the field {key}", key)
        form[key] = value
    return form


def response_sign_content(raw: str, response_key: str) -> str:
    """The exact JSON text of ``response_key``'s value inside a synchronous response (rule 3).

    Found with the JSON decoder itself (``raw_decode`` from the value's first character), so a
    brace inside a string value cannot cut it short, unlike bracket counting."""
    decoder = json.JSONDecoder()
    try:
        top = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ProviderError(f"Alipay answered something that is not JSON: {exc}") from exc
    if not isinstance(top, dict) or response_key not in top:
        raise ProviderError(f"Alipay's answer has no {response_key}")
    # Walk the top-level members in order, re-finding each one's raw span.
    index = _skip_ws(raw, 0)
    if raw[index] != "{":
        raise ProviderError("Alipay's answer is not a JSON object")
    index += 1
    while True:
        index = _skip_ws(raw, index)
        key, index = decoder.raw_decode(raw, index)
        index = _skip_ws(raw, index)
        if raw[index] != ":":
            raise ProviderError("Alipay's answer is not a JSON object")
        start = _skip_ws(raw, index + 1)
        _, end = decoder.raw_decode(raw, start)
        if key == response_key:
            return raw[start:end]
        index = _skip_ws(raw, end)
        if raw[index] != ",":
            raise ProviderError(f"Alipay's answer has no {response_key}")
        index += 1


def _skip_ws(text: str, index: int) -> int:
    while index < len(text) and text[index] in " \t\r\n":
        index += 1
    if index >= len(text):
        raise ProviderError("Alipay's answer ends too early")
    return index


def biz_content(fields: Mapping[str, object]) -> str:
    """``biz_content`` as compact JSON; Chinese kept as UTF-8 (it is signed as sent)."""
    return json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":"))
