"""One shape for every JSON error the web app returns: ``{"error": {"code", "message",
"field"}}``, from a service error (``cloud.errors``) or from Flask itself (an unknown URL, a
method not allowed) under the API prefix. Pages render their own errors in the page's language."""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from cloud.errors import ServiceError

_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


def error_response(
    status: int, code: str, message: str, field: str | None = None, **headers: str
) -> Response:
    """A JSON error response."""
    body = {"error": {"code": code, "message": message, "field": field}}
    return Response(json.dumps(body), status=status, mimetype="application/json", headers=headers)


def service_error_response(err: ServiceError) -> Response:
    """The response for a refused request, with the status its class gives."""
    return error_response(err.status, err.code, err.message, err.field)


def register(app: Flask, api_prefix: str) -> None:
    """Under ``api_prefix`` even Flask's own errors are JSON; elsewhere they stay as they are."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not request.path.startswith(api_prefix):
            return exc
        status = exc.code or 500
        message = {
            404: f"no API endpoint {request.path}; see {api_prefix}/openapi.json",
            405: f"{request.method} is not allowed on {request.path}",
        }.get(status, exc.description or "error")
        headers = {}
        if status == 405 and exc.get_headers():
            headers = {k: v for k, v in exc.get_headers() if k.lower() == "allow"}
        return error_response(status, _HTTP_CODES.get(status, "http_error"), message, **headers)
