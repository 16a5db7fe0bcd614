"""One translation catalog for every page and every export: Flask-Babel, English msgids,
zh_CN by default, English switchable (kept in the session as ``lang``).

The catalog is ``cloud/web/translations/zh/LC_MESSAGES/messages.po`` (committed; the folder is
``zh`` because Babel spells zh_CN ``zh_Hans_CN`` and gettext then looks for that or ``zh``). English
needs no catalog: its text is the msgid. The ``.mo`` Babel reads is compiled from the ``.po``
by ``make setup`` and again by ``create_app`` whenever the ``.po`` is newer (so editing the
``.po`` never leaves a stale page); the ``.mo`` is git-ignored.

Adding a string: write it in English inside ``_()`` (templates, views, exports), run
``python -m cloud.web.i18n update`` (adds the new msgids to the ``.po``), fill in its
``msgstr``. ``tests/web/test_catalog.py`` fails on any msgid without a zh_CN translation and on
Chinese written straight into a template or a view.

Outside a request (a background export), wrap the work in ``flask_babel.force_locale(lang)``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po
from babel.support import NullTranslations
from flask import Flask, g, has_request_context, session
from flask_babel import Babel, get_translations
from flask_babel.speaklater import LazyString
from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup

DEFAULT_LOCALE = "zh_CN"
# locale -> (the name shown in the switch, the <html lang> value)
LANGUAGES: dict[str, tuple[str, str]] = {"zh_CN": ("中文", "zh-CN"), "en": ("English", "en")}
HERE = Path(__file__).resolve().parent
TRANSLATIONS = HERE / "translations"
CLOUD = HERE.parent
# Where user-facing text lives: the web package (views, templates) and the exporters.
SOURCES = (HERE, CLOUD / "reporting")
_METHODS = [
    ("**/static/**", "ignore"),
    ("**/assets/**", "ignore"),
    ("**/templates/**.html", "jinja2.ext:babel_extract"),
    ("**/templates/**.txt", "jinja2.ext:babel_extract"),
    ("**.py", "python"),
]
_OPTIONS = {"**/templates/**.html": {"trimmed": "true"}, "**/templates/**.txt": {}}
# lazy_gettext (as ``_l``) for text defined at import time: menus, column titles, labels.
_KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}


# locale -> its catalog folder under translations/ (see the module docstring)
_FOLDERS = {"zh_CN": "zh"}


def po_path(locale: str = DEFAULT_LOCALE) -> Path:
    return TRANSLATIONS / _FOLDERS.get(locale, locale) / "LC_MESSAGES" / "messages.po"


def current_locale() -> str:
    """The request's locale: the session's choice, else zh_CN."""
    if has_request_context():
        chosen = session.get("lang")
        if chosen in LANGUAGES:
            return str(chosen)
    return DEFAULT_LOCALE


# Parsed once: Flask-Babel parses what the selector returns on every request unless it is a
# Locale already.
_LOCALES = {code: Locale.parse(code) for code in LANGUAGES}


def selected_locale() -> Locale:
    """Flask-Babel's locale selector: ``current_locale`` as a Locale."""
    return _LOCALES[current_locale()]


def html_lang() -> str:
    """The ``<html lang>`` value; ECharts picks its built-in Chinese from ``zh-CN``."""
    return LANGUAGES[current_locale()][1]


def translations() -> NullTranslations:
    """The catalog of this request's locale. Flask-Babel finds it again for every string (its
    context, domain, locale and cache: ~10 µs, a third of a page's rendering with ~30 strings);
    here it is kept on Flask-Babel's own request context next to the locale it is for, so a
    ``force_locale`` block or a ``refresh()`` (a new or no locale object) finds it anew."""
    try:
        ctx = g._flask_babel
        locale, found = ctx.gridvend_translations
        if locale is ctx.babel_locale:
            return found
    except (AttributeError, RuntimeError):  # not looked up yet, or outside a request
        pass
    found = get_translations()
    ctx = g.get("_flask_babel") if g else None
    if ctx is not None and getattr(ctx, "babel_locale", None) is not None:
        ctx.gridvend_translations = (ctx.babel_locale, found)
    return found


def gettext(string: str, /, **variables: Any) -> str:
    """``flask_babel.gettext`` through the request's catalog found once (``translations``)."""
    rv: str = translations().ugettext(string)
    return rv % variables if variables else rv


def lazy_gettext(string: str, /, **variables: Any) -> LazyString:
    """``flask_babel.lazy_gettext`` whose text is found through ``gettext`` above: for labels
    drawn on hot pages (a receipt's type, method and delivery state)."""
    return LazyString(gettext, string, **variables)


@pass_eval_context
def _template_gettext(eval_ctx: EvalContext, string: str, /, **variables: Any) -> str:
    """Templates' ``_()`` and ``gettext()``: what Jinja's newstyle gettext does (translated,
    Markup when autoescaping, always ``%``-formatted with the keywords, which are escaped), in
    one call. Jinja's own takes three ``Context.call`` per string (``_`` → ``gettext`` → the
    callable), about half the rendering of a receipt page with its ~25 strings."""
    rv: str = translations().ugettext(string)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    if not variables and "%" not in rv:
        return rv  # what ``% {}`` gives back
    return rv % variables


@pass_eval_context
def _template_ngettext(
    eval_ctx: EvalContext, singular: str, plural: str, num: int, /, **variables: Any
) -> str:
    """Templates' ``ngettext()`` (``num`` is a keyword too, as in Jinja's own)."""
    variables.setdefault("num", num)
    rv: str = translations().ungettext(singular, plural, num)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


def init_app(app: Flask) -> Babel:
    """Install Flask-Babel on the app, compiling the catalog first when it is stale."""
    compile_catalogs()
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    babel = Babel(app, locale_selector=selected_locale)
    # Templates translate through the request's catalog found once (see ``translations``).
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: translations().ugettext(s),
        ngettext=lambda s, p, n: translations().ungettext(s, p, n),
        newstyle=True,
        pgettext=lambda c, s: translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: translations().unpgettext(c, s, p, n),
    )
    # The same, one call each (the {% trans %} tag calls gettext/ngettext by these names).
    app.jinja_env.globals.update(
        _=_template_gettext, gettext=_template_gettext, ngettext=_template_ngettext
    )
    app.jinja_env.globals.update(html_lang=html_lang, languages=LANGUAGES)
    app.jinja_env.globals["current_locale"] = current_locale
    return babel


def compile_catalogs() -> list[Path]:
    """Write ``messages.mo`` beside every ``messages.po`` that is newer; returns those written.
    A read-only install keeps the ``.mo`` it shipped with."""
    written = []
    for po in TRANSLATIONS.glob("*/LC_MESSAGES/messages.po"):
        mo = po.with_suffix(".mo")
        if mo.exists() and mo.stat().st_mtime >= po.stat().st_mtime:
            continue
        with po.open("rb") as f:
            catalog = read_po(f)
        try:
            with mo.open("wb") as f:
                write_mo(f, catalog)
        except OSError:
            continue
        written.append(mo)
    return written


def extract() -> Iterator[tuple[str, str, int]]:
    """Every translatable msgid in the sources: (msgid, file, line). Plural forms yield both."""
    for root in SOURCES:
        for filename, lineno, message, _comments, _context in extract_from_dir(
            root, method_map=_METHODS, options_map=_OPTIONS, keywords=_KEYWORDS
        ):
            texts = message if isinstance(message, tuple) else (message,)
            for text in texts:
                if text:
                    yield text, str(root / filename), lineno


def load_catalog(locale: str = DEFAULT_LOCALE) -> Catalog:
    path = po_path(locale)
    if not path.exists():
        return Catalog(locale=locale)
    with path.open("rb") as f:
        return read_po(f, locale=locale)


def untranslated(locale: str = DEFAULT_LOCALE) -> list[str]:
    """Msgids in the sources with no (or a fuzzy) translation, each as 'file:line: msgid'."""
    catalog = load_catalog(locale)
    missing = []
    for msgid, filename, lineno in extract():
        message = catalog.get(msgid)
        text = message.string if message is not None else None
        if isinstance(text, tuple):
            text = text[0] if all(text) else ""
        if not text or (message is not None and message.fuzzy):
            rel = Path(filename).relative_to(CLOUD.parent)
            missing.append(f"{rel}:{lineno}: {msgid!r}")
    return sorted(set(missing))


def update(locale: str = DEFAULT_LOCALE) -> int:
    """Add the sources' new msgids to the locale's ``.po`` (empty msgstr, to fill in); keeps
    every existing translation. Returns how many were added."""
    catalog = load_catalog(locale)
    added = 0
    for msgid, filename, lineno in extract():
        if msgid not in catalog:
            rel = str(Path(filename).relative_to(CLOUD.parent))
            catalog.add(msgid, "", locations=[(rel, lineno)])
            added += 1
    path = po_path(locale)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog, omit_header=False, sort_output=True, include_lineno=False)
    return added


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "compile"
    if command == "compile":
        compile_catalogs()
        return 0
    if command == "update":
        print(f"gridvend: {update()} new msgids in {po_path()}")
        return 0
    if command == "check":
        missing = untranslated()
        for line in missing:
            print(line)
        return 1 if missing else 0
    print("usage: python -m cloud.web.i18n [compile|update|check]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
