"""`gridvend provision`: collector identities, keys, configs, the broker's security, the site
check. What each command does is in its module; this file only parses and dispatches (a
command's module is imported when it runs, so ``selftest`` on a collector never loads the
cloud's database code).

    gridvend provision broker --dir DIR [--port 1883] [--host 127.0.0.1] [--tls-port 8883]
        [--name broker.example.com ...] [--public-host H] [--system]
    gridvend provision site SHEET.xlsx --broker-dir DIR --out DIR [--database URL] [--force]
    gridvend provision integrator --broker-dir DIR --site S --name N
    gridvend provision revoke --broker-dir DIR NAME
    gridvend provision reload --broker-dir DIR
    gridvend provision selftest --config edge.toml [--relay METER] [--max-drift-s 300]
    gridvend provision gateway --site S --gateway G --bus name=bus1,url=tcp://10.0.0.5:4001,model=acrel-ddsy1352 \\
        [--bus ...] [--meters meters.csv] [--broker mqtt://host:1883] [--broker-dir DIR] \\
        [--timezone Asia/Shanghai] [--key-id 1] --out DIR [--force]
    gridvend provision rotate-key --key-file DIR/G.key
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

# command -> module with run(args) -> int
COMMANDS = {
    "broker": "provisioning.commands",
    "site": "provisioning.site",
    "integrator": "provisioning.commands",
    "revoke": "provisioning.commands",
    "reload": "provisioning.commands",
    "gateway": "provisioning.commands",
    "rotate-key": "provisioning.commands",
    "selftest": "provisioning.selftest",
}


def _broker_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker-dir", type=Path, required=True, help="the broker folder")


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Make collector identities, keys, configs and broker security."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("broker", help="a broker folder: bridge credentials, ACL, config, TLS")
    p.add_argument("--dir", type=Path, required=True, help="the folder to make")
    p.add_argument("--port", type=int, default=1883, help="plain listener port (default 1883)")
    p.add_argument("--host", default="127.0.0.1", help="plain listener address")
    p.add_argument("--tls-port", type=int, default=None, help="add a TLS listener (e.g. 8883)")
    p.add_argument("--tls-host", default="0.0.0.0", help="TLS listener address")
    p.add_argument(
        "--name", action="append", default=[], help="a host name or IP collectors connect to"
    )
    p.add_argument("--public-host", default=None, help="the host in collectors' broker URL")
    p.add_argument(
        "--system",
        action="store_true",
        help="a conf.d snippet for the system Mosquitto (Debian) instead of a standalone config",
    )

    p = sub.add_parser("site", help="one workbook → every collector's bundle, cloud, broker")
    p.add_argument("sheet", type=Path, help="the site workbook (.xlsx)")
    _broker_dir(p)
    p.add_argument("--out", type=Path, required=True, help="folder for the collectors' bundles")
    p.add_argument("--database", default=None, help="cloud database URL ($GRIDVEND_DATABASE_URL)")
    p.add_argument("--instance", default=None, help="cloud instance folder (default ./instance)")
    p.add_argument("--broker-url", default=None, help="collectors' broker URL (default: folder's)")
    p.add_argument("--force", action="store_true", help="new keys for collectors that exist")

    p = sub.add_parser("integrator", help="read-only broker credentials for one site's north")
    _broker_dir(p)
    p.add_argument("--site", required=True)
    p.add_argument("--name", required=True, help="the integrator's user name")

    p = sub.add_parser("revoke", help="take a collector's or integrator's broker access away")
    _broker_dir(p)
    p.add_argument("name")

    p = sub.add_parser("reload", help="make the running broker reread passwords and the ACL")
    _broker_dir(p)

    p = sub.add_parser("selftest", help="check a collector on site: buses, meters, broker, cloud")
    p.add_argument("--config", type=Path, required=True, help="the collector's edge.toml")
    p.add_argument("--relay", default=None, metavar="METER", help="also trip and close METER")
    p.add_argument("--max-drift-s", type=int, default=300, help="meter clock limit (s)")
    p.add_argument("--timeout-s", type=float, default=15.0, help="wait for the cloud's ack (s)")
    p.add_argument("--skip-cloud", action="store_true", help="no broker or cloud checks")

    p = sub.add_parser("gateway", help="one collector: key file, edge.toml, cloud record")
    p.add_argument("--site", required=True)
    p.add_argument("--gateway", required=True)
    p.add_argument(
        "--bus",
        action="append",
        required=True,
        metavar="SPEC",
        help="name=bus1,url=tcp://host:port|/dev/ttyUSB0,model=acrel-ddsy1352[,baud=9600,parity=N]",
    )
    p.add_argument("--meters", type=Path, help="CSV: id,bus,address[,ct,pt,tariff_id,...]")
    p.add_argument("--broker", default=None, help="mqtt://host:port or mqtts:// (TLS)")
    p.add_argument("--broker-dir", type=Path, default=None, help="add it to this broker folder")
    p.add_argument("--timezone", default="Asia/Shanghai", help="IANA zone or a fixed offset")
    p.add_argument("--key-id", type=int, default=1)
    p.add_argument("--out", type=Path, required=True, help="folder for the files")
    p.add_argument("--force", action="store_true", help="replace existing files (a new identity)")

    p = sub.add_parser("rotate-key", help="add a new current key to a key file")
    p.add_argument("--key-file", type=Path, required=True)
    return parser


def main(argv: list[str], prog: str = "gridvend provision") -> int:
    args = build_parser(prog).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command])
    try:
        return int(module.run(args))
    except ValueError as exc:  # every provisioning error is a ValueError with the reason
        print(f"{prog} {args.command}: {exc}", file=sys.stderr)
        return 2
