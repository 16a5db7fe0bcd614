"""`gridvend bench <name>`: run one benchmark, or `all`. Each prints `name: value` lines, with
its targets beside the figures, and exits non-zero when it misses one."""

from __future__ import annotations

import argparse
import importlib

# name -> module exposing main(argv) -> int
BENCHES: dict[str, str] = {
    "engine": "bench.engine",
    "bus": "bench.bus",
    "edge": "bench.edge",
    "cloud": "bench.cloud",
    "import": "bench.imports",
    "provision": "bench.provision",
    "tenant": "bench.tenant",
    "notify": "bench.notify",
    "web": "bench.web",
    "reports": "bench.reports",
    "scale": "bench.scale.run",
}


def main(argv: list[str], prog: str = "gridvend bench") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("name", choices=[*BENCHES, "all"])
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="options for the benchmark")
    args = parser.parse_args(argv)
    names = list(BENCHES) if args.name == "all" else [args.name]
    failed = []
    for name in names:
        print(f"# bench {name}", flush=True)
        module = importlib.import_module(BENCHES[name])
        if int(module.main(args.rest) or 0):
            failed.append(name)
    if failed:
        # Each benchmark exits non-zero when it misses its target (or its check fails).
        print(f"# missed targets or failed checks: {', '.join(failed)}", flush=True)
    return 1 if failed else 0
