"""`gridvend bench bus` still runs end to end (a small, fast line; the figures that matter come
from `make bench`, not from here)."""

from __future__ import annotations

from bench import bus as bench_bus


def test_bench_bus_prints_every_figure(capsys):
    code = bench_bus.main(
        ["--meters", "4", "--baud", "115200", "--sweeps", "1", "--faulty-sweeps", "1",
         "--trials", "3", "--dead", "2", "--no-naive"]
    )  # fmt: skip
    out = capsys.readouterr().out
    figures = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert code == 0
    for name in ("sweep_over_floor", "faulty_sweep_over_floor", "command_latency_ms",
                 "command_latency_budget_ms", "floor_s", "faulty_sweep_s"):  # fmt: skip
        assert float(figures[name]) > 0, name
