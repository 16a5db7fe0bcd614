"""The tenants' phone site (issue 12, F41/F42): ``/t/…``, one blueprint, templates under
``templates/tenant/``.

It shares the office shell's machinery rather than copying it: the one Flask-Babel catalog
(``cloud.web.i18n``; the language switch is the office's ``/office/language``), CSRF on every
POST, the CSP (``script-src 'self'``: no inline script; chart data in ``<script
type="application/json">``), the form helper and its field macro, the money filters. Its own
small stylesheet and script (``static/tenant.css``, ``static/js/tenant.js``) keep the first
load well under 150 KB on a phone; ECharts loads on the usage page only.

Pages (``security.page`` checks who may open each; anything not theirs is 404):

==================================  ============================================================
``/t/login``                        户号 + phone → one-time code → signed in
``/t/``                             to the tenant's first meter
``/t/m/<meter>/``                   home: balance (元 and kWh), status, today/month, runway,
                                    "request power on"; a picker for several meters
``/t/m/<meter>/usage``              30 daily bars, 12 monthly bars, TOU split
``/t/m/<meter>/topup``              presets and a custom amount → provider
``/t/orders/<no>``  (+ ``/status``)  the result page, following the order live
``/t/m/<meter>/records``            records; ``/t/receipts/<sale>`` the electronic receipt
==================================  ============================================================
"""

from __future__ import annotations

from flask import Flask

from cloud.web.tenant import auth, formatting, home, records, topup
from cloud.web.tenant.security import ROUTES, bp

__all__ = ["ROUTES", "auth", "bp", "home", "init_app", "records", "topup"]


def init_app(app: Flask) -> None:
    """Register the tenant site (after the office shell, whose CSRF, CSP and catalog it uses)."""
    app.register_blueprint(bp)
    formatting.install(app)
