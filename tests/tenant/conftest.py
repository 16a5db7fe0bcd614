"""Fixtures of the tenant-site tests: one site (database, app, tenants) per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.tenant.support import Site, make_site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    made = make_site(tmp_path_factory.mktemp("tenant"))
    made.app.config["PROPAGATE_EXCEPTIONS"] = True  # a failing view shows its traceback
    try:
        yield made
    finally:
        made.db.dispose()
