"""Every user-facing string in the web UI and the exports has a zh_CN translation, and none is
written in Chinese straight into a template or a view (msgids are English; Chinese comes from
the one catalog, so the English page and English exports never show untranslated Chinese)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from jinja2 import Environment

from cloud.web import i18n

CLOUD = Path(i18n.__file__).resolve().parents[1]
TEMPLATES = CLOUD / "web" / "templates"
_CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef]")
# Language names in the switch are each language's own name (an autonym), never translated.
_AUTONYMS = {name for name, _lang in i18n.LANGUAGES.values()}
_ATTRS = re.compile(r'\b(?:placeholder|title|aria-label|alt)="([^"{}]*)"')
_TAG = re.compile(r"<[^>]*>", re.S)


def _sources() -> list[Path]:
    files = [*TEMPLATES.rglob("*.html"), *(CLOUD / "web").rglob("*.py")]
    files += [CLOUD / "reporting" / "exports.py"]
    # the REST API speaks English (docs/api.md); it is not translated
    skip = {"assets", "translations", "api"}
    return [f for f in files if f.exists() and not skip & set(f.parts)]


def test_every_msgid_has_a_zh_cn_translation() -> None:
    missing = i18n.untranslated()
    assert not missing, (
        "untranslated (run `python -m cloud.web.i18n update`, fill in msgstr):\n"
        + "\n".join(missing)
    )


def _python_strings(path: Path) -> list[tuple[int, str]]:
    """String constants of a module except docstrings (those may cite the seed's Chinese)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            docstrings.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_no_chinese_written_outside_the_catalog() -> None:
    found = []
    for path in _sources():
        if path.name == "i18n.py":
            continue
        rel = path.relative_to(CLOUD.parent)
        if path.suffix == ".py":
            lines = _python_strings(path)
        else:
            lines = list(enumerate(path.read_text(encoding="utf-8").splitlines(), 1))
        for n, text in lines:
            for name in _AUTONYMS:
                text = text.replace(name, "")
            if _CJK.search(text):
                found.append(f"{rel}:{n}: {text.strip()[:80]}")
    assert not found, "Chinese outside the catalog (use an English msgid):\n" + "\n".join(found)


def test_template_text_is_all_inside_gettext() -> None:
    """Literal text between tags (and in placeholder/title/aria-label/alt) must be inside
    ``{{ _("...") }}`` or ``{% trans %}``: the template's raw text, with every expression and
    tag taken out, carries no words."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    bare = []
    for path in sorted(TEMPLATES.rglob("*.html")):
        parts, in_trans = [], False
        for _lineno, kind, value in env.lex(path.read_text(encoding="utf-8")):
            if kind == "name" and value in {"trans", "pluralize"}:
                in_trans = True
            elif kind == "name" and value == "endtrans":
                in_trans = False
            parts.append(value if kind == "data" and not in_trans else "\x00")
        raw = re.sub(r"<script[^>]*>.*?</script>", " ", "".join(parts), flags=re.S)
        words = _ATTRS.findall(raw)
        words += re.findall(r"[A-Za-z][A-Za-z'’-]+", _TAG.sub(" ", raw))
        words = [w for w in words if w.strip("\x00 ") and w not in {"nbsp", "gridvend"}]
        if words:
            bare.append(f"{path.relative_to(CLOUD.parent)}: {' '.join(words)[:120]}")
    assert not bare, "text outside _() in templates:\n" + "\n".join(bare)


def test_the_catalog_compiles_and_translates() -> None:
    i18n.compile_catalogs()
    mo = i18n.po_path().with_suffix(".mo")
    assert mo.is_file()
    catalog = i18n.load_catalog()
    assert catalog.locale is not None
    assert catalog.locale.language == "zh"
