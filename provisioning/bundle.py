"""A collector's bundle: the folder a field engineer copies to one collector (edge.toml, its key
file, the broker's CA certificate when the broker speaks TLS), with ``SHA256SUMS`` inside (check
it on the collector with ``sha256sum -c SHA256SUMS``) and the same folder as ``<id>.tar.gz``
beside it with its ``<id>.tar.gz.sha256``, for copying as one file.

Bundles are written into a staging folder first (:func:`stage`) and moved into place together
(:func:`publish`), so a failed provisioning run leaves no bundle behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

SUMS = "SHA256SUMS"


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, mode)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stage(staging: Path, gateway: str, files: dict[str, tuple[bytes, int]]) -> Path:
    """Write ``files`` (name → (bytes, mode)) and their ``SHA256SUMS`` into
    ``staging/<gateway>``, and the archive of that folder beside it. Returns the folder."""
    folder = staging / gateway
    folder.mkdir(parents=True)
    os.chmod(folder, 0o700)  # it holds a key and a password
    sums = []
    for name, (data, mode) in sorted(files.items()):
        _write(folder / name, data, mode)
        sums.append(f"{sha256(data)}  {name}\n")
    _write(folder / SUMS, "".join(sums).encode(), 0o644)
    archive = staging / f"{gateway}.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=gateway)
    data = buf.getvalue()
    _write(archive, data, 0o600)
    _write(staging / f"{gateway}.tar.gz.sha256", f"{sha256(data)}  {archive.name}\n".encode(),
           0o644)  # fmt: skip
    return folder


def verify(folder: Path) -> list[str]:
    """Names in ``folder``'s SHA256SUMS whose content does not match (empty: all good)."""
    bad = []
    for line in (folder / SUMS).read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file() or sha256(path.read_bytes()) != digest:
            bad.append(name)
    return bad


def names(gateway: str) -> list[str]:
    """What :func:`stage` makes for ``gateway`` next to the folder."""
    return [gateway, f"{gateway}.tar.gz", f"{gateway}.tar.gz.sha256"]


def publish(staging: Path, out: Path, gateways: list[str], replace: bool = False) -> None:
    """Move the staged bundles of ``gateways`` into ``out`` (replacing old ones if asked)."""
    out.mkdir(parents=True, exist_ok=True)
    for gateway in gateways:
        for name in names(gateway):
            target = out / name
            if replace and target.is_dir():
                shutil.rmtree(target)
            os.replace(staging / name, target)
