"""`gridvend bench engine`: readings rated per second by the engine, CPython and MicroPython.

The workload: a site tariff with five time-of-use bands over ten day segments and monthly tiers
as adders (the heaviest rating path), ``--meters`` opened prepaid meters, each read every 30 s
from 20:00 local on 31 January on, so the run crosses band boundaries, tier thresholds (10
and 25 kWh a month, low on purpose) and the month start where tiers reset. One reading is one ``engine.step``: rating, charge, wallet, alarms, relay policy.

The same loop (``LOOP``, in the MicroPython subset) runs on CPython here and under MicroPython
(the pinned WebAssembly build, through ``node tests/upy/exec.mjs``); both report the total
charged, which must agree to the micro-yuan. Prints ``name: value`` lines:
``readings_per_s_cpython``, ``readings_per_s_micropython``, ``micropython_over_cpython`` (the
ratio of the two rates), ``charges_agree`` (1 when both runtimes charged the same).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOOP = '''
from edge.core import engine

TARIFF = {
    "version": 1,
    "effective_from": 0,
    "bands": {"sharp": 1300000, "peak": 1100000, "flat": 700000, "valley": 350000,
              "deep_valley": 250000},
    "day": [["00:00", "deep_valley"], ["06:00", "valley"], ["08:00", "flat"], ["10:00", "peak"],
            ["11:00", "sharp"], ["13:00", "peak"], ["17:00", "flat"], ["19:00", "sharp"],
            ["21:00", "peak"], ["22:00", "valley"]],
    "tiers": {"period": "month", "mode": "adder", "steps": [[0, 0], [10, 50000], [25, 300000]]},
}
START = 1769860800  # 2026-01-31 20:00 local (UTC+8)


def build(n_meters):
    ctx = engine.Context({"site": [TARIFF]}, [[0, 28800]], {"tariff_id": "site"})
    meters = []
    for i in range(n_meters):
        state = engine.new_state("m%d" % i)
        engine.step(state, {"type": "open_account"}, START, ctx)
        credit = {"type": "credit", "purchase_no": 1, "amount_micro_yuan": 10 ** 12}
        engine.step(state, credit, START, ctx)
        engine.step(state, {"type": "reading", "ts": START, "energy_wh": 0}, START, ctx)
        meters.append(state)
    return ctx, meters


def feed(ctx, meters, rounds):
    """Every meter read ``rounds`` times, 30 s apart; returns (readings, total charged)."""
    energy = [0] * len(meters)
    n = 0
    ts = START
    for r in range(rounds):
        ts += 30
        for i in range(len(meters)):
            energy[i] += 20 + (i * 7 + r * 13) % 90
            event = {"type": "reading", "ts": ts, "energy_wh": energy[i],
                     "power_w": 3000 + i, "relay": "closed"}
            engine.step(meters[i], event, ts, ctx)
            n += 1
    total = 0
    for state in meters:
        assert state["balance_micro_yuan"] == (state["credits_micro_yuan"]
            - state["refunds_micro_yuan"] - state["charges_micro_yuan"])
        total += state["charges_micro_yuan"]
    return n, total
'''

UPY_MAIN = """
import time
ctx, meters = build({meters})
t0 = time.ticks_us()
n, total = feed(ctx, meters, {rounds})
dt_us = time.ticks_diff(time.ticks_us(), t0)
print("readings", n, "us", dt_us, "charged", total)
"""


def _cpython(meters: int, rounds: int) -> tuple[int, float, int]:
    namespace: dict[str, object] = {}
    exec(LOOP, namespace)  # the very text MicroPython runs
    ctx, states = namespace["build"](meters)  # type: ignore[operator]
    t0 = time.perf_counter()
    n, total = namespace["feed"](ctx, states, rounds)  # type: ignore[operator]
    return n, time.perf_counter() - t0, total


def _micropython(meters: int, rounds: int) -> tuple[int, float, int]:
    node = shutil.which("node")
    runner = ROOT / "tests" / "upy" / "exec.mjs"
    if node is None or not (ROOT / "tests" / "upy" / "node_modules").is_dir():
        raise RuntimeError("MicroPython runner missing: run `make setup` (node + tests/upy npm ci)")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(LOOP + UPY_MAIN.format(meters=meters, rounds=rounds))
        script = f.name
    try:
        out = subprocess.run(
            [node, str(runner), script], capture_output=True, text=True, timeout=900, check=False
        )
    finally:
        Path(script).unlink()
    if out.returncode != 0:
        raise RuntimeError(f"MicroPython run failed:\n{out.stdout}\n{out.stderr}")
    words = out.stdout.split()
    i = words.index("readings")
    return int(words[i + 1]), int(words[i + 3]) / 1e6, int(words[i + 5])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="gridvend bench engine", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--meters", type=int, default=100, help="meters (default 100)")
    parser.add_argument("--rounds", type=int, default=600, help="CPython reading rounds (600)")
    parser.add_argument("--upy-rounds", type=int, default=60, help="MicroPython rounds (60)")
    parser.add_argument("--repeat", type=int, default=3, help="CPython runs, best kept (3)")
    parser.add_argument("--no-micropython", action="store_true", help="CPython only")
    args = parser.parse_args(argv)

    best = 0.0
    for _ in range(max(1, args.repeat)):
        n, seconds, _ = _cpython(args.meters, args.rounds)
        best = max(best, n / seconds)
    print(f"meters: {args.meters}")
    print(f"readings_cpython: {n}")
    print(f"readings_per_s_cpython: {best:.0f}")
    print("target_readings_per_s: 20000")
    if args.no_micropython:
        return 0 if best >= 20000 else 1
    n_upy, seconds_upy, total_upy = _micropython(args.meters, args.upy_rounds)
    _, _, total_cpy = _cpython(args.meters, args.upy_rounds)
    rate_upy = n_upy / seconds_upy
    print(f"readings_micropython: {n_upy}")
    print(f"readings_per_s_micropython: {rate_upy:.0f}")
    print(f"micropython_over_cpython: {rate_upy / best:.3f}")
    print(f"charges_agree: {int(total_upy == total_cpy)}")
    sys.stdout.flush()
    return 0 if best >= 20000 and total_upy == total_cpy else 1
