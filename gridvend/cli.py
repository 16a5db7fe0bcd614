"""The `gridvend` console script: one entry point, one sub-command per area.

Each sub-command lives with the code it drives and is imported only when used, so
`gridvend sim` on a collector never imports Flask and `gridvend cloud` never imports pymodbus.
A sub-command module exposes ``main(argv: list[str], prog: str) -> int``.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help). Order is the order `gridvend --help` shows.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo.cli", "run the whole system on embedded defaults (simulated park)"),
    "sim": ("edge.sim.cli", "serve a simulated bus of meters (RTU over TCP or a serial port)"),
    "bus": ("edge.buscli", "field commands: read, scan, relay on a real or simulated bus"),
    "edge": ("edge.cli", "the collector agent: run, status"),
    "cloud": ("cloud.cli", "the cloud: init-db, serve, bridge, import, operators, tokens"),
    "provision": ("provisioning.cli", "make collector identities, keys and configs"),
    "bench": ("bench.cli", "benchmarks (engine, bus, edge, cloud, all)"),
}


def _usage() -> str:
    lines = ["usage: gridvend <command> [options]", "", "commands:"]
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<10} {text}")
    lines.append("")
    lines.append("`gridvend <command> --help` shows a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from importlib.metadata import version

        print(version("gridvend"))
        return 0
    name = args[0]
    if name not in COMMANDS:
        print(f"gridvend: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(args[1:], prog=f"gridvend {name}") or 0)


if __name__ == "__main__":
    raise SystemExit(main())
