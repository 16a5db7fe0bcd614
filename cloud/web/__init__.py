"""The Flask application factory: ``create_app(test_config=None)``.

Configuration: ``DATABASE_URL`` (else ``$GRIDVEND_DATABASE_URL``, else ``gridvend.db`` in the
instance folder). The REST API lives at ``/api/v1`` (``cloud.api``); the office web UI comes in
a later issue. The schema is not created here: run ``gridvend cloud init-db`` first.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from cloud import auth
from cloud.db import Database, resolve_url


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Make the cloud web application."""
    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    app.config.from_mapping(DATABASE_URL=None)
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
    else:
        app.config.from_mapping(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    database = app.config.get("DATABASE")
    if database is None:
        database = Database(resolve_url(app.config.get("DATABASE_URL"), app.instance_path))
    app.extensions["gridvend.db"] = database
    app.extensions["gridvend.principals"] = auth.PrincipalCache(
        ttl_s=float(app.config.get("TOKEN_CACHE_S", 30.0))
    )

    from cloud.api import PREFIX, bp

    app.register_blueprint(bp)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        # Under /api, even Flask's own errors (unknown URL, wrong method) are JSON.
        if not request.path.startswith(PREFIX):
            return exc
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.code or 500, "http_error")
        message = {
            404: f"no API endpoint {request.path}; see {PREFIX}/openapi.json",
            405: f"{request.method} is not allowed on {request.path}",
        }.get(exc.code or 500, exc.description or "error")
        body = {"error": {"code": code, "message": message, "field": None}}
        return Response(json.dumps(body), status=exc.code or 500, mimetype="application/json")

    @app.get("/")
    def _index() -> Any:
        return {"service": "gridvend cloud", "api": f"{PREFIX}/openapi.json"}

    return app
