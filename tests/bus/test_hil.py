"""`python -m hil`: the driver catalogue on a pty pair against the simulator passes; pointed at
a port where nothing answers, it fails loudly."""

from __future__ import annotations

import os
import subprocess
import sys


def _hil(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRIDVEND_HIL_")}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "hil"], capture_output=True, text=True, timeout=120, env=env
    )


def test_hil_passes_every_check_against_the_simulator_on_a_pty_pair():
    result = _hil({})
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.startswith("FAIL")]
    for model in ("acrel-ddsy1352", "acrel-adl400", "dlt645"):
        passed = [line for line in lines if line.startswith(f"PASS {model} ")]
        assert len(passed) == 9, (model, passed)
    assert any("relay cycle: trip→open, close→closed" in line for line in lines)


def test_hil_against_a_port_with_no_meter_fails_with_exit_1(pty_pair):
    result = _hil({"GRIDVEND_HIL_PORT": pty_pair.a, "GRIDVEND_HIL_MODEL": "acrel-ddsy1352",
                   "GRIDVEND_HIL_BAUD": "115200"})  # fmt: skip
    assert result.returncode == 1
    assert "FAIL acrel-ddsy1352@" in result.stdout
    assert "did not answer within" in result.stdout
