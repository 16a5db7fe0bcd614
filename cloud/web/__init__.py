"""The Flask application factory: ``create_app(test_config=None)``.

Configuration: ``DATABASE_URL`` (else ``$GRIDVEND_DATABASE_URL``, else ``gridvend.db`` in the
instance folder). The REST API lives at ``/api/v1`` (``cloud.web.api``); the office UI and the
tenant site are blueprints of their own under ``cloud.web``. The schema is not created here: run
``gridvend cloud init-db`` first.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from flask.templating import Environment

from cloud.access import auth
from cloud.db import Database, resolve_url
from cloud.web import compress, errors, office, pay, tenant
from cloud.web.api import PREFIX
from cloud.web.api import bp as api_bp


class _Environment(Environment):
    """Flask's Jinja environment whose templates see the environment's globals as a plain
    dict, a copy made when a template is loaded, instead of Jinja's ``ChainMap`` over them:
    every render, include and import walks its template's globals (a context copies them and
    takes their keys), and a ``ChainMap`` of ~30 globals made that ~20 us each, half a dozen
    times per page. Every global is installed by ``create_app`` before a template loads (as
    Jinja asks: "avoid modifying any globals after a template is loaded"); a template loaded
    with globals of its own still gets the ``ChainMap``."""

    def make_globals(self, d: Any = None) -> Any:
        if d:
            return super().make_globals(d)
        return dict(self.globals)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Make the cloud web application."""
    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    app.jinja_environment = _Environment
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

    app.register_blueprint(api_bp)

    errors.register(app, PREFIX)

    # The office UI's shell (sessions, CSRF with the API exempt, CSP, catalog, blueprints).
    office.init_app(app, api_bp)
    # gzip for text when the browser asks (the office's first load: cloud/web/compress.py).
    compress.init_app(app)

    # Payment providers' notifications and the sandbox's pay page (issue 12).
    pay.init_app(app)

    # The tenants' phone site (issue 12): its own blueprint on the office shell's machinery.
    tenant.init_app(app)

    @app.get("/")
    def _index() -> Any:
        return {"service": "gridvend cloud", "api": f"{PREFIX}/openapi.json"}

    return app
