"""`gridvend edge`: run the collector agent, or show what its store knows.

    gridvend edge run --config edge.toml [--log-level info]
    gridvend edge status --config edge.toml [--json]

``status`` reads the store with a read-only connection: it works while the agent runs (SQLite
WAL lets readers in beside the writer) and while it is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from edge.config import Config, load
from edge.errors import ConfigError, StoreError, StoreLocked


def yuan(micro: int | None) -> str:
    """Micro-yuan as a yuan amount with 2 decimals, by integer arithmetic (rounded toward 0)."""
    if micro is None:
        return "-"
    sign = "-" if micro < 0 else ""
    cents = abs(micro) // 10_000
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _utc(ts: int | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def agent_running(store: Path) -> bool:
    """True if an agent holds the store's lock right now."""
    lock = Path(f"{store}.lock")
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def status_report(cfg: Config) -> dict[str, Any]:
    """Every configured meter's balance, state, relay and last reading, from the store."""
    from edge.cache.store import open_readonly

    conn = open_readonly(cfg.store)
    try:
        rows = {r["id"]: dict(r) for r in conn.execute("SELECT * FROM meters")}
        queued = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        envs, inflight = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(count), 0) FROM inflight"
        ).fetchone()
    finally:
        conn.close()
    meters = []
    for m in cfg.meters:
        row = rows.get(m.id, {})
        last = json.loads(row["last_reading_json"]) if row.get("last_reading_json") else None
        meters.append(
            {
                "meter": m.id,
                "bus": m.bus,
                "address": m.address,
                "balance_micro_yuan": row.get("balance_micro_yuan"),
                "state": row.get("display_state"),
                "relay": row.get("relay"),
                "mode": row.get("mode"),
                "last_reading_ts": row.get("last_reading_ts"),
                "energy_wh": last["energy_wh"] if last else None,
                "power_w": last.get("power_w") if last else None,
            }
        )
    return {
        "gateway": cfg.gateway,
        "site": cfg.site,
        "agent_running": agent_running(cfg.store),
        "uplink": {"queued": queued, "inflight_envelopes": envs, "inflight": inflight},
        "meters": meters,
    }


def format_table(report: dict[str, Any]) -> str:
    """The status report as a fixed-width table."""
    head = (
        "meter",
        "bus",
        "addr",
        "balance ¥",
        "state",
        "relay",
        "mode",
        "energy Wh",
        "last reading",
    )
    rows = [
        (
            m["meter"],
            m["bus"],
            str(m["address"]),
            yuan(m["balance_micro_yuan"]),
            m["state"] or "-",
            m["relay"] or "-",
            m["mode"] or "-",
            "-" if m["energy_wh"] is None else str(m["energy_wh"]),
            _utc(m["last_reading_ts"]),
        )
        for m in report["meters"]
    ]
    widths = [max(len(str(c)) for c in col) for col in zip(head, *rows, strict=False)]
    right = {3, 7}
    lines = []
    for row in (head, *rows):
        cells = [
            str(c).rjust(w) if i in right else str(c).ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join(cells).rstrip())
    up = report["uplink"]
    running = "running" if report["agent_running"] else "not running"
    lines.append("")
    lines.append(
        f"gateway {report['gateway']} (site {report['site']}), agent {running}; uplink backlog: "
        f"{up['queued']} queued, {up['inflight']} in {up['inflight_envelopes']} unacked envelopes"
    )
    return "\n".join(lines)


def _run(cfg: Config, log_level: str | None) -> int:
    from edge.agent import Agent
    from edge.core.errors import EngineError
    from shared import logs
    from shared.broker import BrokerError

    logs.setup(log_level or cfg.log_level)
    agents: list[Agent] = []

    async def main() -> None:
        agent = Agent(cfg)
        agents.append(agent)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, agent.request_stop)
        await agent.run()

    try:
        asyncio.run(main())
    except StoreLocked as exc:
        print(f"gridvend edge run: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, EngineError, StoreError, BrokerError) as exc:
        # a config the checks of edge.toml could not catch alone: a driver option, a tariff,
        # a site default, a store written by a newer gridvend
        print(f"gridvend edge run: {exc}", file=sys.stderr)
        return 2
    if agents and agents[0].final_commit_error is not None:
        print(
            f"gridvend edge run: the last readings were not committed at shutdown "
            f"({agents[0].final_commit_error}); they are read again after the restart",
            file=sys.stderr,
        )
        return 1
    return 0


def _backup_or_restore(cfg: Config, args: argparse.Namespace) -> int:
    from edge.cache import backup

    try:
        if args.command == "backup":
            manifest = backup.backup_store(cfg.store, args.out, f"{cfg.site}/{cfg.gateway}")
            print(f"backup {args.out}: {manifest['meters']} meters, store version "
                  f"{manifest['user_version']}, sha256 {manifest['sha256'][:16]}…")  # fmt: skip
        else:
            done = backup.restore_store(
                args.file, cfg.store, force=args.force, collector=f"{cfg.site}/{cfg.gateway}"
            )
            print(f"restored {args.file} to {cfg.store}; uplink sequence numbers continue after "
                  f"{done['seq_reserved']} (none is reused)")  # fmt: skip
    except backup.BackupError as exc:
        print(f"gridvend edge {args.command}: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str], prog: str = "gridvend edge") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="The collector agent.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", type=Path, required=True, help="edge.toml")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    st = sub.add_parser("status", help="balances, states, relays, last readings from the store")
    st.add_argument("--config", type=Path, required=True, help="edge.toml")
    st.add_argument("--json", action="store_true", help="JSON instead of a table")
    bk = sub.add_parser("backup", help="a consistent copy of the store (also while it runs)")
    bk.add_argument("--config", type=Path, required=True, help="edge.toml")
    bk.add_argument("--out", type=Path, required=True, help="the backup file (+ .json)")
    rs = sub.add_parser("restore", help="put a store backup back (the agent stopped)")
    rs.add_argument("--config", type=Path, required=True, help="edge.toml")
    rs.add_argument("file", type=Path, help="a file made by `gridvend edge backup`")
    rs.add_argument("--force", action="store_true", help="replace the store that is there")
    args = parser.parse_args(argv)
    try:
        cfg = load(args.config)
        if args.command == "run":
            return _run(cfg, args.log_level)
        if args.command in ("backup", "restore"):
            return _backup_or_restore(cfg, args)
        report = status_report(cfg)
    except (ConfigError, StoreError, sqlite3.Error) as exc:
        print(f"{prog} {args.command}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0
