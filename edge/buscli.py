"""``gridvend bus``: field commands for engineers and scripts. Output is JSON on stdout; an error
is one line on stderr and a non-zero exit (1: the meter or line failed, 2: bad arguments).

::

    gridvend bus read  --url tcp://10.0.0.5:4001 --model acrel-ddsy1352 --address 5
    gridvend bus scan  --url /dev/ttyUSB0 --baud 9600 --model acrel-ddsy1352 --addresses 1-32
    gridvend bus relay --url modbus-tcp://10.0.0.6:502 --model acrel-ddsy1352 --address 5 --open
    gridvend bus clock --url /dev/ttyUSB1 --model dlt645        # 08H broadcast time
    gridvend bus identify --url /dev/ttyUSB1 --model dlt645     # 13H: the one meter's address

``read`` prints the reading; ``scan`` prints ``{"answered": [...], "silent": [...],
"refused": {address: error}}``; ``relay`` performs the operation, reads the meter back and
prints ``{"address", "op", "relay"}`` (exit 1 if the relay did not end where it should).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from edge import drivers
from edge.errors import BusError, ConfigError
from shared.codec.errors import CodecError, ReplyError

_EXPECT = {"trip": "open", "close": "closed", "keep_power": "closed"}


def _address_list(text: str) -> list[str]:
    out: list[str] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-", 1)
            if not (low.strip().isdigit() and high.strip().isdigit()):
                raise ConfigError(f"bad address range {part!r} (use e.g. 1-32)")
            out.extend(str(a) for a in range(int(low), int(high) + 1))
        else:
            out.append(part)
    if not out:
        raise ConfigError("no addresses given")
    return out


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Field commands on a meter bus.")
    sub = parser.add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--url", required=True,
                       help="tcp://HOST:PORT (RTU over TCP), modbus-tcp://HOST:PORT, or a "
                            "serial device path")  # fmt: skip
        p.add_argument("--model", required=True, help=", ".join(drivers.models()))
        p.add_argument("--baud", type=int, help="default: the model's (9600; DL/T 645 2400)")
        p.add_argument("--parity", choices=["N", "E", "O"])
        p.add_argument("--stop-bits", type=int, choices=[1, 2], default=1)
        p.add_argument("--answer-ms", type=int,
                       help="time a meter gets to answer beyond the wire time")  # fmt: skip
        p.add_argument("--retries", type=int, default=1)

    p = sub.add_parser("read", help="print one reading as JSON")
    common(p)
    p.add_argument("--address", required=True)
    p = sub.add_parser("scan", help="list which addresses answer")
    common(p)
    p.add_argument("--addresses", required=True, help="e.g. 1-32 or 1,2,5")
    p = sub.add_parser("relay", help="drive a relay")
    common(p)
    p.add_argument("--address", required=True)
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--open", dest="op", action="store_const", const="trip")
    group.add_argument("--close", dest="op", action="store_const", const="close")
    group.add_argument("--keep-power", dest="op", action="store_const", const="keep_power")
    group.add_argument("--release", dest="op", action="store_const", const="release")
    p = sub.add_parser("clock", help="broadcast the time to every meter on the line")
    common(p)
    p = sub.add_parser("identify", help="DL/T 645: read the address of the only meter connected")
    common(p)
    return parser


async def _run(args: argparse.Namespace) -> Any:
    driver = drivers.get(args.model)
    client = drivers.open_transport(
        args.url,
        model=driver,
        baud=args.baud,
        parity=args.parity,
        stop_bits=args.stop_bits,
        answer_ms=args.answer_ms,
    )
    try:
        now = int(time.time())
        if args.action == "read":
            address = driver.parse_address(args.address)
            return await driver.read(client, address, now=now, retries=args.retries)
        if args.action == "scan":
            found: dict[str, Any] = {"answered": [], "silent": [], "refused": {}}
            for text in _address_list(args.addresses):
                address = driver.parse_address(text)
                try:
                    await driver.read(client, address, now=now, retries=args.retries)
                    found["answered"].append(address)
                except ReplyError as exc:
                    found["answered"].append(address)
                    found["refused"][str(address)] = str(exc)
                except (BusError, CodecError):
                    found["silent"].append(address)
            return found
        if args.action == "relay":
            address = driver.parse_address(args.address)
            driver.check_op(args.op)
            await driver.command(client, address, args.op, now=now, retries=args.retries)
            reading = await driver.read(client, address, now=now, retries=args.retries)
            result = {"address": address, "op": args.op, "relay": reading["relay"]}
            want = _EXPECT.get(args.op)
            if want and reading["relay"] not in (None, want):
                raise BusError(
                    f"meter {address} on {args.url} acknowledged {args.op} but reports its "
                    f"relay {reading['relay']}: check the relay and its wiring"
                )
            return result
        if args.action == "identify":
            if not hasattr(driver, "read_address"):
                raise ConfigError(
                    f"model {driver.model} has no wildcard address read; use `scan` instead"
                )
            return {"address": await driver.read_address(client, retries=args.retries)}
        await driver.sync_clock(client, now)
        return {"clock_sent": now}
    finally:
        await client.close()


def main(argv: list[str], prog: str = "gridvend bus") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        result = asyncio.run(_run(args))
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    except (BusError, CodecError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0
