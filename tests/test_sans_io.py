"""edge/core and shared/codec are sans-I/O (style.md, convention 1): walk every import in their
source (parsed with ast, so imports inside functions and try blocks count too) and fail on any
module that touches a clock, file, socket, serial port, MQTT, a database, or threads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TREES = {"edge/core": "edge.core", "shared/codec": "shared.codec"}

# Top-level modules that do I/O, read a clock, or run concurrently.
FORBIDDEN = {
    "asyncio", "socket", "socketserver", "ssl", "select", "selectors", "serial", "serial_asyncio",
    "paho", "amqtt", "pymodbus", "sqlite3", "sqlalchemy", "alembic", "psycopg", "psycopg2",
    "flask", "waitress", "werkzeug", "requests", "httpx", "urllib", "http", "ftplib", "smtplib",
    "os", "io", "sys", "time", "datetime", "calendar", "zoneinfo", "pathlib", "shutil", "tempfile",
    "glob", "fcntl", "termios", "tty", "pty", "signal", "mmap", "subprocess", "threading",
    "multiprocessing", "concurrent", "queue", "logging", "random", "secrets", "uuid", "pickle",
    "shelve", "dbm", "openpyxl", "machine", "uasyncio", "utime", "uos", "usocket",
}  # fmt: skip
# Third-party imports that are allowed, by file: the envelope encrypts with `cryptography`
# (OpenSSL's AES-GCM, a computation on bytes).
ALLOWED_THIRD_PARTY = {"shared/codec/envelope.py": {"cryptography"}}
STDLIB_PURE = {
    "__future__", "typing", "collections", "struct", "json", "binascii", "hashlib", "hmac",
    "enum", "dataclasses", "abc", "math", "functools", "itertools", "re", "base64", "string",
    "zlib", "operator", "bisect", "array", "copy",
}  # fmt: skip


def _sources() -> list[Path]:
    files: list[Path] = []
    for tree in TREES:
        files.extend(sorted((ROOT / tree).rglob("*.py")))
    return files


def _imports(source: str, rel: str) -> list[tuple[int, str]]:
    """(line, absolute dotted module name) of every import in a file, in line order."""
    package = ".".join(Path(rel).with_suffix("").parts[:-1])
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename=rel)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return sorted(found)


def _violations(source: str, rel: str) -> list[str]:
    tree = next(t for t in TREES if rel.startswith(t + "/"))
    own = TREES[tree]
    bad = []
    for line, name in _imports(source, rel):
        top = name.split(".")[0]
        where = f"{rel}:{line} imports {name}"
        if top in FORBIDDEN:
            bad.append(f"{where}: an I/O module; keep I/O out of {tree} (pass values in instead)")
        elif top in ("edge", "shared", "cloud", "provisioning", "bench", "hil", "tests"):
            if not (name == own or name.startswith(own + ".")):
                bad.append(f"{where}: outside {own}, which must only import itself")
        elif top not in STDLIB_PURE and top not in ALLOWED_THIRD_PARTY.get(rel, set()):
            bad.append(f"{where}: not a known pure module; add it to STDLIB_PURE if it does no I/O")
    return bad


def test_there_are_sources_to_check() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _sources()}
    assert "edge/core/engine.py" in names
    assert "shared/codec/envelope.py" in names


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_imports_no_io(path: Path) -> None:
    assert _violations(path.read_text(), path.relative_to(ROOT).as_posix()) == []


def test_the_walker_catches_io_imports() -> None:
    # The check itself must be able to fail: a module (text only) with hidden imports.
    probe = (
        "def f():\n    import socket\n\ntry:\n    from time import sleep\nexcept ImportError:\n"
        "    pass\nfrom edge.cache import store\nfrom . import engine\nimport requests.adapters\n"
    )
    found = _violations(probe, "edge/core/probe.py")
    assert [v.split(" imports ")[1].split(":")[0] for v in found] == [
        "socket",
        "time",
        "edge.cache",
        "requests.adapters",
    ]
