"""``gridvend sim``: serve a simulated bus of meters until interrupted.

Prints one JSON line when ready (``{"ready": true, "listen": [...], "control": ..., ...}``),
then serves. Examples::

    gridvend sim --model acrel-ddsy1352 --count 32 --listen tcp://127.0.0.1:5020 \\
        --control tcp://127.0.0.1:5021 --wire-timing --baud 9600 --turnaround-ms 20
    gridvend sim --model dlt645 --count 4 --serial /dev/pts/7 --speed 60 --seed 7
    gridvend sim --model acrel-ddsy1352 --listen tcp://127.0.0.1:0 --dead 3,17 \\
        --crc-error-rate 0.02

Addresses: Modbus meters are ``--first-address`` … ``+count-1``; DL/T 645 meter *i* is
``f"{i:012d}"``. Fault options name meters by those numbers (``3,17``, ``5-8``) or ``all``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from typing import Any

from edge.sim import Simulator
from edge.sim.control import execute
from edge.sim.server import MODELS, SimBus


def _addresses(text: str) -> list[Any]:
    if text == "all":
        return ["all"]
    out: list[Any] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                low, high = part.split("-", 1)
                out.extend(range(int(low), int(high) + 1))
            elif part:
                out.append(int(part))
    except ValueError:
        raise ValueError(f"bad meter list {text!r} (use e.g. 3,17 or 5-8 or all)") from None
    return out


def _pairs(text: str, what: str) -> list[tuple[Any, int]]:
    """``ADDRS=VALUE`` (VALUE an int)."""
    if "=" not in text:
        raise ValueError(f"{what} wants ADDRESSES=VALUE (got {text!r})")
    addrs, value = text.split("=", 1)
    return [(a, int(value)) for a in _addresses(addrs)]


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Serve a simulated bus of meters.")
    p.add_argument("--model", required=True, choices=sorted(MODELS))
    p.add_argument("--count", type=int, default=32, help="meters on the line (default 32)")
    p.add_argument("--first-address", type=int, default=1)
    p.add_argument(
        "--listen",
        action="append",
        default=[],
        help="tcp://HOST:PORT (RTU over TCP) or modbus-tcp://HOST:PORT; repeatable",
    )
    p.add_argument("--serial", help="serve on this serial device (a socat pty, an RS-485 port)")
    p.add_argument("--control", help="JSON-lines control channel, tcp://127.0.0.1:PORT")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per real second (consumption and load profiles; meter clocks keep real time)",
    )
    p.add_argument("--start", type=int, help="simulated start time, epoch seconds (default now)")
    p.add_argument("--baud", type=int)
    p.add_argument("--parity", choices=["N", "E", "O"])
    p.add_argument("--stop-bits", type=int, choices=[1, 2], default=1)
    p.add_argument(
        "--wire-timing",
        action="store_true",
        help="answer after the real line's wire time + t3.5 + turnaround",
    )
    p.add_argument("--turnaround-ms", type=float, default=20.0)
    p.add_argument("--dead", help="meters that never answer, e.g. 3,17")
    p.add_argument("--crc-error-rate", type=float, help="probability a reply is corrupted")
    p.add_argument("--garbage-rate", type=float, help="probability of junk bytes around a reply")
    p.add_argument("--slow", action="append", default=[], help="ADDRS=MS extra turnaround")
    p.add_argument("--counter-reset", action="append", default=[], help="ADDRS=EPOCH_S")
    p.add_argument("--clock-drift", action="append", default=[], help="ADDRS=S_PER_DAY")
    p.add_argument("--relay-stuck", help="meters whose relay does not move")
    p.add_argument("--refuse-relay", help="DL/T 645 meters refusing 1CH as unauthorised")
    return p


def _faults(args: argparse.Namespace) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = []
    line: dict[str, Any] = {}
    if args.crc_error_rate is not None:
        line["crc_error_rate"] = args.crc_error_rate
    if args.garbage_rate is not None:
        line["garbage_rate"] = args.garbage_rate
    if line:
        requests.append({"cmd": "fault", **line})
    for flag, key in (
        ("dead", "dead"),
        ("relay_stuck", "relay_stuck"),
        ("refuse_relay", "refuse_relay"),
    ):
        for a in _addresses(getattr(args, flag) or ""):
            requests.append({"cmd": "fault", "address": a, key: True})
    for flag, key in (
        ("slow", "slow_ms"),
        ("counter_reset", "counter_reset_at"),
        ("clock_drift", "clock_drift_s_per_day"),
    ):
        for text in getattr(args, flag):
            for a, value in _pairs(text, "--" + flag.replace("_", "-")):
                requests.append({"cmd": "fault", "address": a, key: value})
    return requests


async def _serve(sim: Simulator) -> None:
    await sim.start()
    print(json.dumps(sim.info), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.close()


def main(argv: list[str], prog: str = "gridvend sim") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        if not args.listen and not args.serial:
            raise ValueError("give --listen tcp://HOST:PORT or --serial DEVICE")
        bus = SimBus(
            args.model,
            args.count,
            seed=args.seed,
            speed=args.speed,
            start_ts=args.start,
            first_address=args.first_address,
            baud=args.baud,
            parity=args.parity,
            stop_bits=args.stop_bits,
            wire_timing=args.wire_timing,
            turnaround_ms=args.turnaround_ms,
        )
        for request in _faults(args):
            execute(bus, request)
        sim = Simulator(bus, args.listen, args.serial, args.control)
        asyncio.run(_serve(sim))
    except (ValueError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:], prog="gridvend sim"))
