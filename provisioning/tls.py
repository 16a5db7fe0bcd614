"""The broker's TLS material, made by provisioning (``cryptography``): a private CA, and a server
certificate signed by it for the names and addresses clients connect to.

Why a private CA: collectors and the bridge must check that the broker they reach is ours
(``ca_file`` in edge.toml, ``--ca-file`` for the bridge); a public CA would vouch for any host
with a certificate for that name. Keys are EC P-256 (small, fast on a collector's CPU, supported
by Mosquitto's OpenSSL). The CA key never leaves the broker folder; a collector's bundle gets
only ``ca.crt``.

Files (in ``<broker folder>/tls``): ``ca.key`` (0600), ``ca.crt``, ``server.key`` (0640),
``server.crt``. The server certificate carries every name as a subjectAltName (clients check
SANs, not the common name) and is valid for ``SERVER_DAYS``; making it again keeps the CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity common TLS clients still accept for a server cert


class TlsError(ValueError):
    """The TLS material cannot be made or read; the message says which file and why."""


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(folder: Path, name: str = "gridvend broker CA") -> Path:
    """Make ``ca.key`` and ``ca.crt`` in ``folder`` (refuses to replace an existing CA: every
    collector's bundle trusts it). Returns the certificate's path."""
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "ca.crt", folder / "ca.key"
    if cert_path.exists() or key_path.exists():
        raise TlsError(f"{folder} already holds a CA; collectors trust it, so it is kept")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path


def _load_ca(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate((folder / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((folder / "ca.key").read_bytes(), None)
    except (OSError, ValueError) as exc:
        raise TlsError(f"cannot read the CA in {folder}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{folder / 'ca.key'} is not an EC key made by gridvend provision")
    return cert, key


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def make_server_cert(folder: Path, names: list[str], key_mode: int = 0o640) -> Path:
    """Make (or make again) ``server.key`` / ``server.crt`` for ``names`` (host names and IP
    addresses the clients use), signed by the CA in ``folder``. Returns the certificate's path."""
    if not names:
        raise TlsError("the server certificate needs at least one host name or address")
    ca_cert, ca_key = _load_ca(folder)
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_san(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(folder / "server.key", _key_pem(key), key_mode)
    path = folder / "server.crt"
    _write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return path


def server_names(folder: Path) -> list[str]:
    """The names and addresses the current server certificate is valid for."""
    try:
        cert = x509.load_pem_x509_certificate((folder / "server.crt").read_bytes())
    except (OSError, ValueError) as exc:
        raise TlsError(f"cannot read {folder / 'server.crt'}: {exc}") from None
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(v) for v in san.get_values_for_type(x509.DNSName)] + [
        str(v) for v in san.get_values_for_type(x509.IPAddress)
    ]
