"""Templates translate through the request's catalog found once per request and locale
(``cloud.web.i18n.translations``): a ``force_locale`` block (the background exports) and a
language switch within the request still get their own language, and the one before comes
back after the block."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
import pytest
from flask import session
from flask_babel import force_locale, refresh

from cloud.db import Database
from cloud.web import create_app
from cloud.web.i18n import translations

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


# What templates write; each rendered with autoescaping on and off.
GETTEXT_SOURCES = (
    "{{ _('Sale') }}",
    "{{ gettext('Sale receipt') }}",
    "{{ _('Working… %(percent)d %%', percent=5) }}",
    "{{ _('100%% sure') }}",
    "{{ _('Operator %(name)s already exists.', name='<b>li</b>') }}",
    "{{ _('<b>%(x)s</b>', x='<i>') }}",
    "{{ _('Sale')|length }} {{ _('Sale') ~ '<' }}",
    "{% trans %}Sign out{% endtrans %}",
    "{% trans n=3 %}{{ n }} meter{% pluralize %}{{ n }} meters{% endtrans %}",
    "{{ ngettext('%(num)d meter', '%(num)d meters', 1) }}|{{ ngettext('%(num)d meter', '%(num)d meters', 2, x=1) }}",
)  # fmt: skip


def test_templates_gettext_gives_what_jinjas_own_newstyle_gettext_gives(app: Any) -> None:
    """``_()``, ``gettext()``, ``ngettext()`` and ``{% trans %}`` are one call each
    (``i18n._template_gettext``), and give what Jinja's own newstyle callables give: translated,
    escaped variables, ``%`` formatting even without variables."""
    stock = jinja2.Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    stock.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: translations().ugettext(s),
        ngettext=lambda s, p, n: translations().ungettext(s, p, n),
        newstyle=True,
    )
    sources = [*GETTEXT_SOURCES]
    sources += [f"{{% autoescape false %}}{s}{{% endautoescape %}}" for s in GETTEXT_SOURCES]
    for lang in ("zh_CN", "en"):
        with app.test_request_context("/office/"):
            session["lang"] = lang
            for source in sources:
                ours = app.jinja_env.from_string(source).render()
                assert ours == stock.from_string(source).render(), (lang, source)
    with app.test_request_context("/office/"):
        assert app.jinja_env.from_string(GETTEXT_SOURCES[0]).render() == "售电"
        assert "&lt;b&gt;li&lt;/b&gt;" in app.jinja_env.from_string(GETTEXT_SOURCES[4]).render()
