"""CPU seconds per part of the system, read from /proc, to say which limit a run hit: the bridges,
PostgreSQL's backends, the broker nodes, the load processes (everything else on the machine is
"other"). Linux only; a part whose processes cannot be read counts zero."""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    total = sum(values[:8])
    return (total - idle) / TICKS, total / TICKS


def snapshot(parts: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each named part (pids given), plus ``postgres`` (every process
    named postgres) and ``machine`` (busy seconds of all cores)."""
    out = {name: sum(_cpu_s(p) for p in pids) for name, pids in parts.items()}
    postgres = [int(p) for p in os.listdir("/proc") if p.isdigit() and _comm(int(p)) == "postgres"]
    out["postgres"] = sum(_cpu_s(p) for p in postgres)
    out["machine"] = machine_busy_s()[0]
    return out


def shares(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    """Cores used by each part between two snapshots (1.0 = one core busy all the time)."""
    used = {k: (after.get(k, 0.0) - before.get(k, 0.0)) / wall_s for k in after}
    known = sum(v for k, v in used.items() if k != "machine")
    used["other"] = max(0.0, used.get("machine", 0.0) - known)
    return {k: round(v, 2) for k, v in used.items()}
