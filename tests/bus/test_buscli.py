"""`gridvend bus read|scan|relay|clock` against a simulator subprocess: JSON out, one clear
error line and a non-zero exit when something is wrong."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge import buscli
from edge.sim import SimProcess


@pytest.fixture(scope="module")
def sim():
    args = ["--model", "acrel-ddsy1352", "--count", "4", "--listen", "tcp://127.0.0.1:0",
            "--baud", "115200", "--dead", "3"]  # fmt: skip
    with SimProcess(args) as process:
        yield process


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = buscli.main(list(argv), prog="gridvend bus")
    out, err = capsys.readouterr()
    return code, out, err


def common(sim: SimProcess) -> list[str]:
    return ["--url", sim.url, "--model", "acrel-ddsy1352", "--baud", "115200"]


def test_read_prints_one_reading_as_json(sim, capsys):
    code, out, _ = cli(capsys, "read", *common(sim), "--address", "2")
    assert code == 0
    reading = json.loads(out)
    with sim.control() as ctl:
        truth = ctl.call("state", address=2)["state"]
    assert truth["energy_wh"] - 10 < reading["energy_wh"] <= truth["energy_wh"]
    assert reading["relay"] == "closed"


def test_scan_lists_who_answers(sim, capsys):
    code, out, _ = cli(capsys, "scan", *common(sim), "--addresses", "1-5")
    assert code == 0
    assert json.loads(out) == {"answered": [1, 2, 4], "silent": [3, 5], "refused": {}}


def test_relay_opens_and_closes_and_reads_back(sim, capsys):
    code, out, _ = cli(capsys, "relay", *common(sim), "--address", "4", "--open")
    assert (code, json.loads(out)) == (0, {"address": 4, "op": "trip", "relay": "open"})
    with sim.control() as ctl:
        assert ctl.call("state", address=4)["state"]["relay"] == "open"
    code, out, _ = cli(capsys, "relay", *common(sim), "--address", "4", "--close")
    assert (code, json.loads(out)["relay"]) == (0, "closed")


def test_relay_that_does_not_move_is_reported(sim, capsys):
    with sim.control() as ctl:
        ctl.call("fault", address=1, relay_stuck=True)
    try:
        code, out, err = cli(capsys, "relay", *common(sim), "--address", "1", "--open")
    finally:
        with sim.control() as ctl:
            ctl.call("clear_faults", address=1)
    assert code == 1
    assert out == ""
    assert "acknowledged trip but reports its relay closed" in err


def test_silent_meter_is_one_clear_line_and_exit_1(sim):
    result = subprocess.run(
        [sys.executable, "-m", "gridvend", "bus", "read", *common(sim), "--address", "3"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"gridvend bus: meter 3 on {sim.url} did not answer within ")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["read", "--url", "tcp://127.0.0.1:9", "--model", "acme", "--address", "1"], "acme"),
        (["read", "--url", "ftp://x:1", "--model", "dlt645", "--address", "1"], "scheme"),
        (["read", "--url", "tcp://127.0.0.1:9", "--model", "acrel-adl400", "--address", "0"],
         "1..247"),
        (["relay", "--url", "tcp://127.0.0.1:9", "--model", "acrel-adl400", "--address", "1",
          "--open"], "no relay"),
        (["scan", "--url", "tcp://127.0.0.1:9", "--model", "dlt645", "--addresses", "a-b"],
         "bad address range"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_errors(capsys, argv, message):
    code, out, err = cli(capsys, *argv)
    assert code in (1, 2)
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_unreachable_line_is_a_link_error(capsys):
    code, _, err = cli(capsys, "read", "--url", "/nonexistent/tty", "--model", "dlt645",
                       "--address", "1")  # fmt: skip
    assert code == 1
    assert "cannot open /nonexistent/tty" in err


def test_clock_broadcast_sets_dlt645_meters(capsys):
    args = ["--model", "dlt645", "--count", "2", "--listen", "tcp://127.0.0.1:0",
            "--baud", "115200", "--start", "1767225600"]  # fmt: skip
    with SimProcess(args) as dl:
        common_args = ["--url", dl.url, "--model", "dlt645", "--baud", "115200"]
        code, out, _ = cli(capsys, "clock", *common_args)
        assert code == 0
        sent = json.loads(out)["clock_sent"]
        code, out, _ = cli(capsys, "read", *common_args, "--address", "2")
        assert code == 0
        assert abs(json.loads(out)["clock"] - sent) <= 5


def test_identify_reads_the_address_of_a_lone_dlt645_meter(capsys):
    args = ["--model", "dlt645", "--count", "1", "--first-address", "7", "--listen",
            "tcp://127.0.0.1:0", "--baud", "115200"]  # fmt: skip
    with SimProcess(args) as dl:
        code, out, _ = cli(capsys, "identify", "--url", dl.url, "--model", "dlt645",
                           "--baud", "115200")  # fmt: skip
        assert (code, json.loads(out)) == (0, {"address": "000000000007"})


def test_identify_is_refused_for_modbus_models(sim, capsys):
    code, _, err = cli(capsys, "identify", *common(sim))
    assert code == 2
    assert "use `scan`" in err
