"""SHA256withRSA and the key formats the providers' consoles hand out, pinned by openssl."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from cloud.errors import InvalidError
from cloud.payments.errors import SignatureInvalidError
from cloud.payments.signing import (
    load_private_key,
    load_public_key,
    sign_sha256_rsa,
    verify_sha256_rsa,
)
from tests.payments.players import VECTORS, bare_base64, pem, private_key

VECTOR = json.loads((VECTORS / "vectors.json").read_text())


def test_signature_equals_openssls_for_the_same_key_and_message() -> None:
    key = load_private_key(pem("merchant_key_pkcs1.pem"))
    message = (VECTORS / "alipay_request.txt").read_bytes()
    assert sign_sha256_rsa(key, message) == VECTOR["alipay_request_sign"]


def test_pkcs1_pkcs8_and_bare_base64_private_keys_are_the_same_key() -> None:
    message = b"same key, three spellings"
    signatures = {
        sign_sha256_rsa(load_private_key(text), message)
        for text in (
            pem("merchant_key_pkcs1.pem"),
            pem("merchant_key_pkcs8.pem"),
            bare_base64(pem("merchant_key_pkcs1.pem")),
            bare_base64(pem("merchant_key_pkcs8.pem")),
        )
    }
    assert len(signatures) == 1


def test_public_key_from_pem_bare_base64_or_certificate_verifies_openssls_signature() -> None:

    provider = private_key("provider_key.pem")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Tenpay.com Root CA test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(provider.public_key())
        .serial_number(0x5157F09E)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(provider, hashes.SHA256())
    )
    message = (VECTORS / "alipay_notify.txt").read_bytes()
    for text in (
        pem("provider_pub.pem"),
        bare_base64(pem("provider_pub.pem")),
        cert.public_bytes(serialization.Encoding.PEM).decode(),
    ):
        verify_sha256_rsa(load_public_key(text), message, VECTOR["alipay_notify_sign"])


def test_one_changed_byte_fails_verification() -> None:
    key = load_public_key(pem("provider_pub.pem"))
    message = bytearray((VECTORS / "alipay_notify.txt").read_bytes())
    message[-1] ^= 1
    with pytest.raises(SignatureInvalidError):
        verify_sha256_rsa(key, bytes(message), VECTOR["alipay_notify_sign"])


@pytest.mark.parametrize("signature", ["", "not base64!", "AAAA"])
def test_missing_or_garbage_signatures_are_signature_errors(signature: str) -> None:
    with pytest.raises(SignatureInvalidError):
        verify_sha256_rsa(load_public_key(pem("provider_pub.pem")), b"x", signature)


def test_short_keys_and_non_keys_are_refused_at_configuration() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    text = small.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(InvalidError, match="1024 bits"):
        load_private_key(text, "app_private_key")
    with pytest.raises(InvalidError) as caught:
        load_public_key("hello", "alipay_public_key")
    assert caught.value.field == "alipay_public_key"
