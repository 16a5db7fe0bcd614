"""gzip on the wire (cloud/web/compress.py): static files and pages are gzipped only for a client
that asks, decompress to exactly what is served plain, revalidate to 304 with the gzipped copy's
ETag; small bodies and downloads are left alone."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.support import PASSWORDS, make_app, make_database

GZIP = {"Accept-Encoding": "gzip, deflate, br"}
CSS = "/static/vendor/bootstrap/bootstrap.min.css"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("gzip")
    db, _park = make_database(tmp)
    yield make_app(db, tmp)
    db.dispose()


def test_a_static_file_is_gzipped_for_a_client_that_asks_and_plain_otherwise(app: Any) -> None:
    client = app.test_client()
    plain = client.get(CSS)
    plain_body = plain.data
    plain.close()
    zipped = client.get(CSS, headers=GZIP)
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert gzip.decompress(zipped.data) == plain_body
    assert len(zipped.data) < len(plain_body) / 4
    assert zipped.headers["Content-Length"] == str(len(zipped.data))
    assert zipped.headers["ETag"].rstrip('"').endswith("-gz")
    again = client.get(CSS, headers={**GZIP, "If-None-Match": zipped.headers["ETag"]})
    again.close()
    assert again.status_code == 304


def test_pages_are_gzipped_and_small_answers_and_downloads_are_not(app: Any) -> None:
    client = app.test_client()
    login = client.get("/office/login", headers=GZIP)
    assert login.headers["Content-Encoding"] == "gzip"
    token = re.search(rb'name="csrf_token" value="([^"]+)"', gzip.decompress(login.data))
    assert token is not None
    client.post(
        "/office/login",
        data={"username": "cashier", "password": PASSWORDS["cashier"], "csrf_token": token[1]},
    )
    small = client.get("/", headers=GZIP)
    assert "Content-Encoding" not in small.headers
    export = client.get("/office/sales/records/export", headers=GZIP)
    assert export.status_code == 200
    assert "Content-Encoding" not in export.headers
    assert export.data[:2] == b"PK"  # the .xlsx itself
    export.close()
