"""The MicroPython runner (tests/upy/run.mjs) must catch failures itself: the package's CLI exits
0 whatever Python does. Feed it a failing case, a module that cannot import, and nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tests" / "upy" / "run.mjs"


def _run(cases: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node is not installed; `make test` installs it (apt-get install nodejs)"
    return subprocess.run(
        [node, str(RUNNER), "--cases", str(cases)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_runner_reports_a_failing_case_and_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "cases_probe.py").write_text(
        "from edge.core import money\n\n"
        "def test_ok():\n    assert money.split_by_weights(3, [1, 2]) == [1, 2]\n\n"
        "def test_wrong():\n    assert money.split_by_weights(3, [1, 2]) == [2, 1], 'expected wrong'\n"
    )
    (tmp_path / "cases_broken.py").write_text("import edge.core.no_such_module\n")
    result = _run(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL cases_probe::test_wrong" in result.stdout
    assert "expected wrong" in result.stdout
    assert "FAIL cases_broken (import)" in result.stdout
    assert result.stdout.rstrip().endswith("1 passed, 2 failed")


def test_runner_fails_when_no_test_ran(tmp_path: Path) -> None:
    result = _run(tmp_path)
    assert result.returncode == 1
    assert "0 passed, 0 failed" in result.stdout


def test_runner_passes_the_real_cases() -> None:
    result = _run(ROOT / "tests" / "core")
    assert result.returncode == 0, result.stdout[-3000:]
    last = result.stdout.rstrip().splitlines()[-1]
    passed = int(last.split()[0])
    assert passed >= 60, last
    assert last.endswith(" passed, 0 failed"), last
