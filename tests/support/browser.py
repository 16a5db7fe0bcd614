"""Browser tests the way a person uses the UI: Debian's Chromium driven by Playwright's sync API,
against the real app served over HTTP on loopback.

- ``require_chromium()`` fails (never skips) with the apt line when ``/usr/bin/chromium`` is
  missing; ``make test`` installs it (scripts/sysdeps.sh). Never ``playwright install``: the
  browser is Debian's, launched with ``executable_path``.
- ``LiveServer`` serves a WSGI app (the Flask app) on a free loopback port in a thread; the
  fixtures in ``tests/web/conftest.py`` start one per test module, with one browser per module.
- ``axe_violations(page)`` injects axe-core (from the npm lock, copied by ``make setup``) and
  returns the violations at the given impacts.
- ``download_xlsx(page, click)`` clicks, waits for the download and opens it with openpyxl.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import openpyxl
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
AXE_JS = ROOT / "cloud" / "web" / "static" / "vendor" / "axe-core" / "axe.min.js"
INSTALL_HINT = (
    "`make test` installs it when root; by hand: apt-get install -y chromium fonts-wqy-microhei"
)


def require_chromium() -> str:
    """The browser's path, or an error that says how to install it (a browser test that cannot
    run fails; it is never skipped)."""
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: {INSTALL_HINT}")
    return CHROMIUM


def launch(playwright: Any) -> Any:
    """A headless Chromium from Debian (Playwright adds --no-sandbox itself when running as
    root without chromium_sandbox)."""
    return playwright.chromium.launch(executable_path=require_chromium(), headless=True)


_BODY = "gridvend.tests.body"


def _keeping_the_body(app: Any) -> Any:
    """``app``, leaving what it answers in the environ for ``_ClosingHandler``."""

    def wrapped(environ: dict[str, Any], start_response: Any) -> Any:
        body = app(environ, start_response)
        environ[_BODY] = body
        return body

    return wrapped


class _ClosingHandler(WSGIRequestHandler):
    """werkzeug's handler, closing the answer when the browser dropped the connection: its own
    close runs after a drain that raises itself on a reset connection, so a static file
    (``send_file``'s open file) was left to the garbage collector, a ResourceWarning."""

    def connection_dropped(self, error: BaseException, environ: Any = None) -> None:
        body = (environ or {}).get(_BODY)
        if body is not None and hasattr(body, "close"):
            body.close()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """No line per request: a request thread still answering a page's last asset after
        its test ended would write it to pytest's closed capture stream (the likely source of
        a "--- Logging error ---" from a socketserver thread in two fresh-clone runs, each of
        which passed). Errors are still logged (``log_error``)."""


class LiveServer:
    """A WSGI app on ``http://127.0.0.1:<free port>``, served by werkzeug's threaded server in a
    daemon thread (a page's parallel asset requests are answered at once)."""

    def __init__(self, app: Any) -> None:
        self._server: BaseWSGIServer = make_server(
            "127.0.0.1", 0, _keeping_the_body(app), threaded=True, request_handler=_ClosingHandler
        )
        self.port = int(self._server.server_port)
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"live-server-{self.port}", daemon=True
        )

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def axe_violations(
    page: Any, impacts: Iterable[str] = ("serious", "critical")
) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; the violations at ``impacts``, each with its rule
    id, help text and the offending elements' selectors (readable in an assertion message)."""
    if not AXE_JS.is_file():
        raise RuntimeError(f"{AXE_JS} is missing: run `make setup` (npm ci + vendor copy)")
    # Evaluated through the driver (DevTools), so the page's CSP (script-src 'self') does not
    # block it the way an injected inline <script> would be blocked.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate("async () => await axe.run(document)")
    wanted = set(impacts)
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v.get("impact") in wanted
    ]


def download_xlsx(page: Any, click: Callable[[], None], into: Path) -> tuple[Any, Path]:
    """Do ``click`` (which starts a download), save the file under ``into`` and open it with
    openpyxl; returns (workbook, path). Fails if no download starts within 15 s."""

    with page.expect_download(timeout=15_000) as info:
        click()
    download = info.value
    path = into / download.suggested_filename
    download.save_as(path)
    return openpyxl.load_workbook(path), path
