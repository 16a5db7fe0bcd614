"""Copy the front-end files the web UI serves from ``node_modules`` (after ``npm ci``) into
``cloud/web/static/vendor/``, each package with its licence files (Apache-2.0 requires the
NOTICE). ``make setup`` runs this; ``static/vendor`` is git-ignored and never fetched from a
CDN.

The list below is the one place that says which files ship. Adding a package: pin it in
``package.json``, run ``npm install --package-lock-only`` here, add its lines below, reference
it in a template as ``url_for('static', filename='vendor/<pkg>/<file>')``.

Run: ``python cloud/web/assets/vendor.py`` (exit 1 naming any missing file).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
VENDOR = HERE.parent / "static" / "vendor"

# destination folder under static/vendor -> files relative to node_modules
FILES: dict[str, tuple[str, ...]] = {
    "bootstrap": (
        "bootstrap/dist/css/bootstrap.min.css",
        "bootstrap/dist/js/bootstrap.bundle.min.js",
        "bootstrap/LICENSE",
        # bootstrap.bundle includes Popper (MIT)
        "@popperjs/core/LICENSE.md",
    ),
    "htmx": ("htmx.org/dist/htmx.min.js", "htmx.org/LICENSE"),
    # echarts.common has bar/line/pie with title and legend; echarts.simple does not render
    # title and legend (checked by tests/web/test_assets.py).
    "echarts": (
        "echarts/dist/echarts.common.min.js",
        "echarts/LICENSE",
        "echarts/NOTICE",
    ),
    # tests only (tests/support/browser.py injects it); never linked from a page
    "axe-core": ("axe-core/axe.min.js", "axe-core/LICENSE", "axe-core/LICENSE-3RD-PARTY.txt"),
}


def _target_name(source: str) -> str:
    name = Path(source).name
    return "popper-LICENSE.md" if source.startswith("@popperjs/") else name


def copy_all(modules: Path = MODULES, vendor: Path = VENDOR) -> list[Path]:
    """Copy every listed file; raise ``FileNotFoundError`` naming the first one missing."""
    written: list[Path] = []
    for folder, sources in FILES.items():
        (vendor / folder).mkdir(parents=True, exist_ok=True)
        for source in sources:
            src = modules / source
            if not src.is_file():
                raise FileNotFoundError(
                    f"{src} is missing: run `npm ci` in {HERE} (make setup does)"
                )
            dest = vendor / folder / _target_name(source)
            shutil.copyfile(src, dest)
            written.append(dest)
    return written


def main() -> int:
    try:
        written = copy_all()
    except FileNotFoundError as exc:
        print(f"gridvend: {exc}", file=sys.stderr)
        return 1
    print(f"gridvend: {len(written)} vendor files in {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
