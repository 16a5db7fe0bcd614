"""`gridvend bench web [SUB ...] [options]`: the office web UI's benchmarks, each a module in
this package with ``run(argv) -> int`` (0 when its targets are met), registered in ``SUBS``.
With no SUB every one runs, in the order below; options are passed to each (each takes the
ones it knows, ``parse_known_args``).

- ``sale`` (``bench/web/sale.py``): a sale through the web form (POST → receipt page) by 20
  concurrent cashiers, p99 ≤ 1.5 × the API sale's p99 measured in the same run.
- ``page`` (``bench/web/page.py``): the sell page's first load ≤ 300 KB over the wire (gzip),
  counted from the responses.
- ``board`` (``bench/web/board.py``): the meter board of 10,000 meters, a page of 100 with
  filters on, server time p99 ≤ 150 ms on SQLite, beside a bare meter query.

Adding one: write ``bench/web/<name>.py`` with ``run(argv)`` and add it here.
"""

from __future__ import annotations

import importlib

# name -> module exposing run(argv) -> int
SUBS: dict[str, str] = {
    "sale": "bench.web.sale",
    "page": "bench.web.page",
    "board": "bench.web.board",
}


def main(argv: list[str]) -> int:
    names = []
    rest = list(argv)
    while rest and rest[0] in SUBS:
        names.append(rest.pop(0))
    if rest and not rest[0].startswith("-"):
        print(f"gridvend bench web: unknown benchmark {rest[0]!r}; one of {', '.join(SUBS)}")
        return 2
    failed = []
    for name in names or list(SUBS):
        print(f"## web {name}", flush=True)
        module = importlib.import_module(SUBS[name])
        if int(module.run(rest) or 0):
            failed.append(name)
    if failed:
        print(f"# web: missed targets or failed checks: {', '.join(failed)}", flush=True)
    return 1 if failed else 0
