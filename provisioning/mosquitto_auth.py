"""Mosquitto's authentication and authorisation, as text: password hashes in the format
``mosquitto_passwd`` writes (Mosquitto 2.0 ``$7$``: PBKDF2-HMAC-SHA512, 101 iterations, a 12-byte
salt, a 64-byte digest, base64), the ACL lines of each principal, and the names allowed in both
(a name is one topic level and one ACL word, so it can carry no ``+``, ``#``, ``/`` or space).
``provisioning.broker`` puts them together into a broker folder."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from pathlib import Path

from shared import topics

BRIDGE_USER = "gridvend-bridge"
RESERVED = (topics.NORTH,)
HASH_ITERATIONS = 101  # mosquitto_passwd's default
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class BrokerSetupError(ValueError):
    """The broker folder or a principal cannot be made; the message names what and why."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The ``$7$`` hash ``mosquitto_passwd`` writes for ``password``."""
    salt = salt if salt is not None else secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${HASH_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, hashed: str) -> bool:
    """True if ``password`` matches a ``$7$`` hash line's hash."""
    try:
        _, alg, iterations, salt, digest = hashed.split("$")
        if alg != "7":
            return False
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations)
        )
    except ValueError:
        return False
    return secrets.compare_digest(got, base64.b64decode(digest))


def new_password() -> str:
    """A broker password: 32 URL-safe characters (192 bits)."""
    return secrets.token_urlsafe(24)


def check_name(name: str, what: str) -> str:
    """A site, collector or integrator id usable as one topic level and one ACL word."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise BrokerSetupError(
            f"{what} {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def acl_lines_collector(site: str, gateway: str) -> list[str]:
    return [
        f"# collector {gateway} (site {site})",
        f"user {gateway}",
        f"topic write {topics.up(site, gateway)}",
        f"topic write {topics.status(site, gateway)}",
        f"topic read {topics.down(site, gateway)}",
        f"topic read {topics.ALL_BRIDGES}",
    ]


def acl_lines_integrator(site: str, name: str) -> list[str]:
    return [
        f"# integrator {name}: reads site {site}'s north subtree, writes nothing",
        f"user {name}",
        f"topic read {topics.all_north(site)}",
    ]


def acl_lines_bridge(user: str = BRIDGE_USER) -> list[str]:
    return [
        "# the cloud bridge: every collector's uplink and status, every downlink, north, and "
        "the bridges' online/offline notices",
        f"user {user}",
        f"topic read {topics.ALL_UP}",
        f"topic read {topics.ALL_STATUS}",
        f"topic write {topics.all_down()}",
        f"topic write {topics.all_north()}",
        f"topic read {topics.ALL_BRIDGES}",
        f"topic write {topics.ALL_BRIDGES}",
    ]


def read_passwd(path: Path) -> dict[str, str]:
    hashes: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return hashes
    for line in text.splitlines():
        user, sep, hashed = line.partition(":")
        if sep and user and not user.startswith("#"):
            hashes[user] = hashed
    return hashes
