"""The import rules of the rooms (docs/architecture.md, "The map"): every import in the source,
parsed with ast (imports inside functions count too), is checked against what its room may
import. A room may import the rooms listed below it, never one above, so the cloud's rooms form
a stack with no circle, and the sides stay apart:

- ``shared`` imports only ``shared``; ``edge`` imports ``edge`` and ``shared``;
- ``cloud`` imports ``cloud``, ``shared`` and the pure engine ``edge.core`` (one definition of
  what a collector accepts), nothing else of ``edge``;
- ``provisioning`` uses ``shared``, the edge (config, drivers, store: the site self-test) and the
  cloud's database and importer (``provision site`` imports the records);
- ``demo`` composes cloud, edge and provisioning; ``gridvend`` (the console script) names them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The cloud's rooms, lowest first: a room may import the ones before it in this list.
CLOUD_STACK = [
    ("cloud.errors", "cloud.models", "cloud.db", "cloud.audit", "cloud.localtime",
     "cloud.migrations", "cloud.values", "cloud.backup"),
    ("cloud.access", "cloud.monitoring"),
    ("cloud.park",),
    ("cloud.control",),
    ("cloud.money",),
    ("cloud.uplink", "cloud.reporting"),
    ("cloud.notify", "cloud.payments"),
    ("cloud.bridge", "cloud.web"),
    ("cloud.cli",),
]  # fmt: skip
# What each top-level area may import, besides the standard library and third-party packages.
AREAS = {
    "shared": ("shared",),
    "edge": ("edge", "shared"),
    "cloud": ("cloud", "shared", "edge.core"),
    # The field tools: the collector's own code (the site self-test opens its buses and its
    # store) and, for `provision site`, the cloud's import and database (records imported).
    "provisioning": (
        "provisioning",
        "shared",
        "edge",
        "cloud.db",
        "cloud.audit",
        "cloud.models",
        "cloud.park.imports",
    ),
    "demo": ("demo", "cloud", "edge", "shared", "provisioning"),
    "hil": ("hil", "edge", "shared", "provisioning"),
}
FIRST_PARTY = (
    "shared",
    "edge",
    "cloud",
    "provisioning",
    "demo",
    "hil",
    "bench",
    "gridvend",
    "tests",
)


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import, ``from a import b`` giving ``a.b``."""
    package = _module_of(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                stem = package[: len(package) - (node.level - 1)]
                base = ".".join([*stem, node.module] if node.module else stem)
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
    return found


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _room(name: str) -> int | None:
    for level, rooms in enumerate(CLOUD_STACK):
        if any(_under(name, room) for room in rooms):
            return level
    return None


def violations(path: Path) -> list[str]:
    """Every import of ``path`` its area or room does not allow, as ``file:line: message``."""
    module = _module_of(path)
    area = module.split(".")[0]
    allowed = AREAS.get(area)
    out: list[str] = []
    for line, name in _imports(path):
        if not name.startswith(FIRST_PARTY) or name.split(".")[0] not in FIRST_PARTY:
            continue
        where = f"{path.relative_to(ROOT)}:{line}"
        if allowed is not None and not any(_under(name, ok) for ok in allowed):
            out.append(f"{where}: {area} may not import {name}")
            continue
        if area == "cloud" and name.startswith("cloud"):
            mine, theirs = _room(module), _room(name)
            if mine is None:
                out.append(f"{where}: {module} is in no room of CLOUD_STACK (add it)")
            elif theirs is not None and theirs > mine:
                out.append(f"{where}: {module} (level {mine}) imports {name} (level {theirs})")
    return out


def _sources() -> list[Path]:
    files: list[Path] = []
    for area in AREAS:
        files.extend(
            p for p in sorted((ROOT / area).rglob("*.py")) if "node_modules" not in p.parts
        )
    return files


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_keeps_to_its_rooms_rules(path):
    assert violations(path) == []


def test_the_rule_catches_an_upward_import_and_an_edge_import_from_the_cloud(tmp_path, monkeypatch):
    # A throwaway tree with the same shape proves the check can fail.
    fake = tmp_path / "cloud" / "park"
    fake.mkdir(parents=True)
    (tmp_path / "cloud" / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    bad = fake / "bad.py"
    bad.write_text(
        "from cloud.money import sales\nimport edge.agent\n"
        "def f():\n    from cloud.bridge import worker\n"
    )
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    found = violations(bad)
    assert any("imports cloud.money.sales" in v for v in found)
    assert any("may not import edge.agent" in v for v in found)
    assert any("imports cloud.bridge.worker" in v for v in found)
    assert len(found) == 3
