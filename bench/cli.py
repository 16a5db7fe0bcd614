"""`gridvend bench <name>`: run one benchmark, or `all`. Each prints `name: value` lines."""

from __future__ import annotations

import argparse
import importlib

# name -> module exposing main(argv) -> int
BENCHES: dict[str, str] = {
    "engine": "bench.engine",
    "bus": "bench.bus",
    "edge": "bench.edge",
    "cloud": "bench.cloud",
}


def _available() -> list[str]:
    found = []
    for name, module in BENCHES.items():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
            continue
        found.append(name)
    return found


def main(argv: list[str], prog: str = "gridvend bench") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("name", choices=[*BENCHES, "all"])
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="options for the benchmark")
    args = parser.parse_args(argv)
    names = _available() if args.name == "all" else [args.name]
    status = 0
    for name in names:
        print(f"# bench {name}", flush=True)
        module = importlib.import_module(BENCHES[name])
        status |= int(module.main(args.rest) or 0)
    return status
