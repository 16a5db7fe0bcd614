"""Collect the plain test modules ``cases_*.py`` too: they are the cases that run on both
CPython (here) and MicroPython (tests/upy/run.mjs), so both runtimes check the same behaviour."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    if parent.session.isinitpath(file_path):
        return None  # named on the command line: pytest's own collector takes it
    if file_path.suffix == ".py" and file_path.name.startswith("cases_"):
        return pytest.Module.from_parent(parent, path=file_path)
    return None
