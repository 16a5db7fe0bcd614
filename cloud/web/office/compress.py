"""gzip for pages and static files when the browser accepts it: the office's first load is
counted over the wire, and Bootstrap, htmx and ECharts are several times smaller compressed.
A static file is compressed once per version (its ETag) and kept in memory; pages every time
(they are small). Downloads (``.xlsx`` is zipped already), other types and the REST API are
left alone."""

from __future__ import annotations

import gzip
import threading

from flask import Flask, Response, request

MIN_BYTES = 1024
TYPES = {"text/html", "text/css", "text/javascript", "application/javascript", "application/json"}
_cache: dict[tuple[str, str], bytes] = {}
_lock = threading.Lock()


def _gzip(response: Response) -> Response:
    if (
        response.status_code != 200
        or response.mimetype not in TYPES
        or "Content-Encoding" in response.headers
        or "gzip" not in request.headers.get("Accept-Encoding", "").lower()
        or request.path.startswith("/api/")  # the API's answers stay as its clients expect
    ):
        return response
    static = request.endpoint == "static"
    if response.is_streamed and not static:
        return response
    key = (request.path, response.headers.get("ETag", "")) if static else None
    with _lock:
        packed = _cache.get(key) if key else None
    if packed is None:
        response.direct_passthrough = False
        body = response.get_data()
        if len(body) < MIN_BYTES:
            return response
        packed = gzip.compress(body, 6)
        if key:
            with _lock:
                _cache[key] = packed
    closing = getattr(response.response, "close", None)
    if callable(closing):
        closing()  # the file a static response would have streamed
    response.direct_passthrough = False
    response.set_data(packed)
    response.headers["Content-Encoding"] = "gzip"
    response.vary.add("Accept-Encoding")
    return response


def install(app: Flask) -> None:
    app.after_request(_gzip)
