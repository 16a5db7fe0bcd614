"""Pages and static files go out gzipped to a browser that accepts it, byte-identical once
unpacked; the login page's first load (HTML, CSS, scripts) weighs well under 300 KB on the
wire."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.support import make_app, make_database

VENDOR = Path(__file__).resolve().parents[2] / "cloud" / "web" / "static" / "vendor"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("gzip")
    db, _park = make_database(tmp)
    yield make_app(db, tmp).test_client()
    db.dispose()


def test_static_files_are_gzipped_and_unpack_to_the_file(client: Any) -> None:
    for _ in range(2):  # the second answer comes from the cache
        resp = client.get(
            "/static/vendor/bootstrap/bootstrap.min.css", headers={"Accept-Encoding": "gzip"}
        )
        assert resp.headers["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in resp.headers["Vary"]
        raw = (VENDOR / "bootstrap" / "bootstrap.min.css").read_bytes()
        assert gzip.decompress(resp.data) == raw
        assert len(resp.data) < len(raw) / 4
        resp.close()
    plain = client.get("/static/vendor/bootstrap/bootstrap.min.css")
    assert "Content-Encoding" not in plain.headers
    plain.close()


def test_the_login_page_first_load_is_small_on_the_wire(client: Any) -> None:
    page = client.get("/office/login", headers={"Accept-Encoding": "gzip"})
    html = gzip.decompress(page.data).decode()
    total = len(page.data)
    for src in (
        "vendor/bootstrap/bootstrap.min.css",
        "vendor/bootstrap/bootstrap.bundle.min.js",
        "vendor/htmx/htmx.min.js",
        "office.css",
        "js/office.js",
    ):
        assert f"/static/{src}" in html
        resp = client.get(f"/static/{src}", headers={"Accept-Encoding": "gzip"})
        total += len(resp.data)
        resp.close()
    assert total < 120_000, total  # 75 KB here (367 KB unpacked)
