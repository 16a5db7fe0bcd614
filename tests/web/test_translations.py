"""Templates translate through the request's catalog found once per request and locale
(``cloud.web.i18n.translations``): a ``force_locale`` block (the background exports) and a
language switch within the request still get their own language, and the one before comes
back after the block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import session
from flask_babel import force_locale, refresh

from cloud.db import Database
from cloud.web import create_app

TEMPLATE = "{{ _('Sale receipt') }}|{{ _('Sign out') }}"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp: Path = tmp_path_factory.mktemp("translations")
    db = Database(f"sqlite:///{tmp / 'office.db'}")
    try:
        yield create_app({"DATABASE": db, "SECRET_KEY": "test-secret-key-0123456789"})
    finally:
        db.dispose()


def test_force_locale_and_a_switch_within_a_request_get_their_language(app: Any) -> None:
    template = app.jinja_env.from_string(TEMPLATE)
    with app.test_request_context("/office/"):
        assert template.render() == "售电小票|退出登录"
        with force_locale("en"):
            assert template.render() == "Sale receipt|Sign out"
        assert template.render() == "售电小票|退出登录"
        session["lang"] = "en"
        refresh()
        assert template.render() == "Sale receipt|Sign out"
    with app.test_request_context("/office/"):  # a new request starts from its own choice
        assert template.render() == "售电小票|退出登录"
