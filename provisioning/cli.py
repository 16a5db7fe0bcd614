"""`gridvend provision`: collector identities, keys and configs for field engineers.

    gridvend provision gateway --site S --gateway G --bus name=bus1,url=tcp://10.0.0.5:4001,model=acrel-ddsy1352 \\
        [--bus ...] [--meters meters.csv] [--broker mqtt://host:1883] [--timezone Asia/Shanghai] \\
        [--key-id 1] --out DIR [--force]
    gridvend provision rotate-key --key-file DIR/G.key
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.config import ConfigError
from provisioning.gateway import (
    ProvisionError,
    parse_bus,
    parse_meters_csv,
    provision_gateway,
    rotate_key,
)


def main(argv: list[str], prog: str = "gridvend provision") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="Make collector identities, keys and configs."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gw = sub.add_parser("gateway", help="a new collector: key file, edge.toml, cloud record, ACL")
    gw.add_argument("--site", required=True)
    gw.add_argument("--gateway", required=True)
    gw.add_argument(
        "--bus",
        action="append",
        required=True,
        metavar="SPEC",
        help="name=bus1,url=tcp://host:port|/dev/ttyUSB0,model=acrel-ddsy1352[,baud=9600,parity=N]",
    )
    gw.add_argument("--meters", type=Path, help="CSV: id,bus,address[,ct,pt,tariff_id,...]")
    gw.add_argument(
        "--broker", default="mqtt://127.0.0.1:1883", help="mqtt://host:port or mqtts://"
    )
    gw.add_argument(
        "--timezone", default="Asia/Shanghai", help="IANA zone or a fixed offset (+08:00)"
    )
    gw.add_argument("--key-id", type=int, default=1)
    gw.add_argument("--out", type=Path, required=True, help="folder for the files")
    gw.add_argument("--force", action="store_true", help="replace existing files (a new identity)")
    rot = sub.add_parser("rotate-key", help="add a new current key to a key file")
    rot.add_argument("--key-file", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "gateway":
            buses = [parse_bus(spec) for spec in args.bus]
            meters = []
            if args.meters is not None:
                try:
                    text = args.meters.read_text(encoding="utf-8-sig")
                except OSError as exc:
                    raise ProvisionError(f"cannot read {args.meters}: {exc.strerror}") from None
                meters = parse_meters_csv(text, [b["name"] for b in buses])
            paths = provision_gateway(
                args.site,
                args.gateway,
                args.out,
                buses=buses,
                meters=meters,
                broker=args.broker,
                timezone=args.timezone,
                key_id=args.key_id,
                force=args.force,
            )
            for what, path in paths.items():
                print(f"{what}: {path}")
            print(f"meters: {len(meters)}")
            print(
                f"next: import {paths['record'].name} in the cloud; copy edge.toml and the key to the collector"
            )
        else:
            print(json.dumps(rotate_key(args.key_file)))
    except (ProvisionError, ConfigError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return 0
