"""gzip on the wire for text responses, when the browser asks for it (``Accept-Encoding``).

The office's first load is mostly Bootstrap, htmx and our own CSS/JS: about 380 KB as files,
under 100 KB gzipped. Office PCs on a park's LAN or a 4G router count every kilobyte, and the
sell page has a budget of 300 KB over the wire (``gridvend bench web page``).

- Static files (``/static/…``) are compressed once per file version (path, size, mtime) and
  kept in memory (a few hundred KB for everything we serve); their ETag gains ``-gz`` so a
  cache never mixes the two encodings.
- Pages, partials and JSON of 1 KB or more are compressed per response (level 5: ~0.1 ms for a
  page of 20 KB). Smaller bodies, streamed downloads (exports) and anything already encoded
  are sent as they are. ``Vary: Accept-Encoding`` tells caches the body depends on it.
"""

from __future__ import annotations

import gzip
import os
import threading
from typing import Any

from flask import Flask, Response, request
from werkzeug.security import safe_join

COMPRESSIBLE = frozenset(
    {
        "text/html",
        "text/css",
        "text/plain",
        "text/csv",
        "text/javascript",
        "application/javascript",
        "application/json",
        "image/svg+xml",
    }
)
MIN_BYTES = 1024
STATIC_LEVEL = 9
PAGE_LEVEL = 5

_cache: dict[tuple[str, int, int], bytes] = {}
_cache_lock = threading.Lock()


def _accepts_gzip() -> bool:
    header = request.headers.get("Accept-Encoding", "")
    return any(part.split(";")[0].strip() == "gzip" for part in header.split(","))


def _static_body(app: Flask, filename: str) -> bytes | None:
    """The gzipped content of a static file, compressed once per version."""
    folder = app.static_folder
    path = safe_join(folder, filename) if folder else None
    if path is None or not os.path.isfile(path):
        return None
    info = os.stat(path)
    key = (path, info.st_size, int(info.st_mtime_ns))
    with _cache_lock:
        body = _cache.get(key)
    if body is None:
        with open(path, "rb") as f:
            body = gzip.compress(f.read(), STATIC_LEVEL, mtime=0)
        with _cache_lock:
            for old in [k for k in _cache if k[0] == path]:
                del _cache[old]
            _cache[key] = body
    return body


def _compress(app: Flask, response: Response) -> Response:
    if (
        response.status_code != 200
        or response.mimetype not in COMPRESSIBLE
        or "Content-Encoding" in response.headers
        or not _accepts_gzip()
    ):
        return response
    if request.endpoint == "static":
        body = _static_body(app, (request.view_args or {}).get("filename", ""))
        if body is None:
            return response
        response.close()
        response.direct_passthrough = False
        response.set_data(body)
        etag, weak = response.get_etag()
        if etag:
            response.set_etag(f"{etag}-gz", weak=bool(weak))
    else:
        if response.is_streamed or response.direct_passthrough:
            return response
        data = response.get_data()
        if len(data) < MIN_BYTES:
            return response
        response.set_data(gzip.compress(data, PAGE_LEVEL, mtime=0))
    response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")
    return response


def init_app(app: Flask) -> None:
    """Compress every response of ``app`` that qualifies (see the module doc)."""

    @app.before_request
    def _conditional_on_the_plain_etag() -> None:
        # A browser revalidates the gzipped copy with its "-gz" ETag: compare the file's own.
        if request.endpoint == "static" and "-gz" in request.headers.get("If-None-Match", ""):
            request.environ["HTTP_IF_NONE_MATCH"] = request.environ["HTTP_IF_NONE_MATCH"].replace(
                "-gz", ""
            )
            request.__dict__.pop("if_none_match", None)

    @app.after_request
    def _gzip(response: Response) -> Any:
        return _compress(app, response)
