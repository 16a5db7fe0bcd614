"""SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256), the one signature both Alipay's RSA2 and
WeChat Pay's WECHATPAY2-SHA256-RSA2048 use, and the key formats their consoles hand out.

Alipay's console gives keys as bare base64 (no PEM armour): the app private key as PKCS#1 or
PKCS#8 DER, the Alipay public key as X.509 SubjectPublicKeyInfo. WeChat Pay gives
``apiclient_key.pem`` (PKCS#8 PEM), platform certificates (PEM X.509) or, since 2024, a
"WeChat Pay public key" ``pub_key.pem``. ``load_private_key`` and ``load_public_key`` accept
all of these, so configuration can paste what the console shows.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cloud.errors import InvalidError
from cloud.payments.errors import SignatureInvalidError

# RSA2 and WeChat both demand 2048-bit keys; smaller keys are refused at configuration time.
MIN_KEY_BITS = 2048

_B64_BODY = re.compile(r"[A-Za-z0-9+/=\s]+")


def _der_from_text(text: str) -> bytes | None:
    """DER bytes when ``text`` is bare base64 (Alipay's console format), else None."""
    stripped = text.strip()
    if "-----BEGIN" in stripped or not _B64_BODY.fullmatch(stripped):
        return None
    try:
        return base64.b64decode("".join(stripped.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def load_private_key(text: str | bytes, field: str = "private_key") -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or bare base64 DER."""
    data = text.decode() if isinstance(text, bytes) else text
    der = _der_from_text(data)
    try:
        key = (
            serialization.load_der_private_key(der, password=None)
            if der is not None
            else serialization.load_pem_private_key(data.encode(), password=None)
        )
    except (ValueError, TypeError) as exc:
        raise InvalidError(
            f"{field} is not an RSA private key in PEM or base64 DER", field
        ) from exc
    checked: rsa.RSAPrivateKey = _checked_rsa(key, field)
    return checked


def load_public_key(text: str | bytes, field: str = "public_key") -> rsa.RSAPublicKey:
    """An RSA public key from PEM (SubjectPublicKeyInfo or PKCS#1), a PEM X.509 certificate,
    or bare base64 DER (Alipay's console)."""
    data = text.decode() if isinstance(text, bytes) else text
    der = _der_from_text(data)
    try:
        if der is not None:
            key: object = serialization.load_der_public_key(der)
        elif "CERTIFICATE" in data:
            key = x509.load_pem_x509_certificate(data.encode()).public_key()
        else:
            key = serialization.load_pem_public_key(data.encode())
    except (ValueError, TypeError) as exc:
        raise InvalidError(
            f"{field} is not an RSA public key or certificate in PEM or base64 DER", field
        ) from exc
    found: rsa.RSAPublicKey = _checked_rsa(key, field)
    return found


def _checked_rsa(key: object, field: str) -> Any:
    if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        raise InvalidError(f"{field} must be an RSA key", field)
    if key.key_size < MIN_KEY_BITS:
        raise InvalidError(f"{field} has {key.key_size} bits; RSA2 needs {MIN_KEY_BITS}", field)
    return key


def sign_sha256_rsa(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """Base64 of the PKCS#1 v1.5 SHA-256 signature of ``message`` (one line, no newlines)."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def verify_sha256_rsa(key: rsa.RSAPublicKey, message: bytes, signature_b64: str) -> None:
    """Raise ``SignatureInvalidError`` unless ``signature_b64`` signs ``message`` under ``key``."""
    if not isinstance(signature_b64, str) or not signature_b64:
        raise SignatureInvalidError("the notification carries no signature", "sign")
    try:
        raw = base64.b64decode(signature_b64.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureInvalidError("the signature is not base64", "sign") from exc
    try:
        key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise SignatureInvalidError(
            "the signature does not match the provider's key", "sign"
        ) from exc
