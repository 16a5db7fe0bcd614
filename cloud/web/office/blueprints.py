"""The office blueprints, one per area. A new area: make its package with a ``bp`` (see
``access/__init__.py``), register its views with ``security.page``, and add it here."""

from __future__ import annotations

from flask import Blueprint

from cloud.web.office import (
    access,
    auth,
    board,
    customers,
    notify,
    payments,
    reports,
    sales,
    settings,
)

BLUEPRINTS: list[Blueprint] = [
    auth.bp,
    access.bp,
    settings.bp,
    board.bp,
    customers.bp,
    sales.bp,
    payments.bp,
    notify.bp,
    reports.bp,
]
