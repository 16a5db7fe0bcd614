"""`gridvend bench web page`: the sell page's first load over the wire, counted from the
responses, as a browser with an empty cache makes it (gzip accepted).

``gridvend cloud serve`` on a fresh SQLite park; one cashier signs in; then the sell page as it
opens (``/office/sales/sell``) and with a meter chosen (``?meter=…``, the info panel and the
sale form) are each loaded cold: the page, every stylesheet, script and image it references,
and ``/favicon.ico`` (a browser asks for it). Each response counts its status line, headers and
body as received. Target: ``sell_page_first_load_kb <= 300`` for both (KB = 1,024 bytes). The
uncompressed size is printed beside it (what the same load costs without gzip).
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import secrets
import tempfile
from typing import Any

from bench.web.client import Office
from bench.web.server import seed, serving

TARGET_KB = 300
_REFS = re.compile(r'<(?:link|script|img)\b[^>]*?\b(?:href|src)="([^"]+)"', re.I)


def _line(name: str, value: Any) -> None:
    print(f"{name}: {value}", flush=True)


def _text(body: bytes, encoding: str | None) -> str:
    raw = gzip.decompress(body) if encoding == "gzip" else body
    return raw.decode("utf-8", "replace")


def first_load(port: int, cookie: str, path: str, compressed: bool) -> tuple[int, list[str]]:
    """Bytes received for ``path`` and everything it references; and what was fetched."""
    office = Office(port, gzip=compressed, cookie=cookie)
    try:
        page = office.get(path)
        if page.status != 200:
            raise RuntimeError(f"GET {path}: {page.status}")
        html = _text(page.body, page.header("Content-Encoding"))
        refs = [r for r in dict.fromkeys(_REFS.findall(html)) if r.startswith("/")]
        total = page.wire_bytes
        fetched = [f"{path} {page.wire_bytes}"]
        for ref in [*refs, "/favicon.ico"]:
            answer = office.get(ref)
            total += answer.wire_bytes
            fetched.append(f"{ref} {answer.wire_bytes} ({answer.status})")
        return total, fetched
    finally:
        office.close()


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridvend bench web page", description=__doc__)
    parser.add_argument("--verbose", action="store_true", help="list every response")
    args, _other = parser.parse_known_args(argv)
    status = 0
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{os.path.join(folder, 'page.db')}"
        logins = seed(url, 2, 1, "bench-" + secrets.token_urlsafe(24))
        with serving(url) as port:
            signed_in = Office(port)
            username, password = next(iter(logins.items()))
            signed_in.login(username, password)
            signed_in.close()
            for name, path in (
                ("sell_page", "/office/sales/sell"),
                ("sell_page_with_meter", "/office/sales/sell?meter=gw0-m000"),
            ):
                wire, fetched = first_load(port, signed_in.cookie, path, compressed=True)
                plain, _ = first_load(port, signed_in.cookie, path, compressed=False)
                kb = wire / 1024
                _line(f"{name}_first_load_kb", f"{kb:.1f} (target <= {TARGET_KB})")
                _line(f"{name}_first_load_kb_without_gzip", f"{plain / 1024:.1f}")
                _line(f"{name}_responses", len(fetched))
                if args.verbose:
                    for item in fetched:
                        _line(f"  {name}", item)
                if kb > TARGET_KB:
                    status = 1
    return status
