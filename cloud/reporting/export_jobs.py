"""Exports too big to wait for (F34: more than ``THRESHOLD_ROWS`` rows) run in the background:
the request that starts one returns at once with the job's id, the page shows its progress and
offers the file when it is done.

A job is files in one folder (``<instance>/exports``), nothing in memory that a request needs:
``<id>.json`` holds its state (``running`` → ``done`` | ``failed``), rows written, rows
expected, who started it, its title and file name; ``<id>.xlsx`` is the workbook once done
(written under a temporary name, then renamed). The status file is replaced atomically, so any
thread or process of the web app reads a whole one. The work runs on a thread of the web process
(it needs neither the bridge nor any other service); a job whose status has not moved for
``STALL_S`` seconds while running died with its process and is reported failed. Jobs and their
files are removed after ``KEEP_S``.

Who sees a job: anyone who could have made the same export, that is an operator holding the
permission the export needed whose buildings cover the buildings of the one who started it
(the whole park covers everything). Anyone else gets ``NotFoundError``, as for a job that does
not exist.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cloud.errors import NotFoundError

THRESHOLD_ROWS = 10_000
STALL_S = 120
KEEP_S = 24 * 3600
_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
# work(out, progress) writes the workbook to ``out``, calling progress(rows) as it goes, and
# returns the rows written.
Work = Callable[[IO[bytes], Callable[[int], None]], int]


@dataclass(frozen=True)
class Viewer:
    """Who asks: their operator id, permissions and buildings (None: the whole park)."""

    operator_id: int
    permissions: frozenset[str]
    buildings: frozenset[int] | None

    def may_see(self, status: dict[str, Any]) -> bool:
        needed = status.get("permission")
        if needed is not None and needed not in self.permissions:
            return False
        if self.buildings is None:
            return True
        made_for = status.get("buildings")
        return made_for is not None and set(made_for) <= self.buildings


class ExportJobs:
    """Background exports kept in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | os.PathLike[str], clock: Callable[[], float] = time.time):
        self.folder = Path(folder)
        self.clock = clock

    # --- the files -------------------------------------------------------------------------

    def _status_path(self, job_id: str) -> Path:
        if not _ID.match(job_id):
            raise NotFoundError(f"export {job_id[:40]!r} does not exist", "job")
        return self.folder / f"{job_id}.json"

    def _write(self, status: dict[str, Any]) -> None:
        path = self._status_path(status["id"])
        tmp = path.with_name(f"{path.name}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(status, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def _read(self, job_id: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = json.loads(self._status_path(job_id).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return found

    # --- what the views call ---------------------------------------------------------------

    def start(
        self,
        *,
        owner: Viewer,
        permission: str | None,
        title: str,
        filename: str,
        total: int,
        work: Work,
    ) -> str:
        """Start ``work`` on a thread for ``owner`` (an export that needs ``permission``);
        returns the job id at once."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.prune()
        job_id = secrets.token_urlsafe(18)
        now = self.clock()
        status = {
            "id": job_id,
            "owner": owner.operator_id,
            "permission": permission,
            "buildings": sorted(owner.buildings) if owner.buildings is not None else None,
            "title": title,
            "filename": filename,
            "state": "running",
            "rows": 0,
            "total": max(int(total), 0),
            "error": None,
            "started": now,
            "updated": now,
            "finished": None,
        }
        self._write(status)
        thread = threading.Thread(
            target=self._run, args=(status, work), name=f"export-{job_id[:8]}", daemon=True
        )
        thread.start()
        return job_id

    def status(self, job_id: str, viewer: Viewer) -> dict[str, Any]:
        """A job's state for someone who may see it: ``percent`` 0–100 added; a stalled one is
        failed."""
        found = self._read(job_id)
        if found is None or not viewer.may_see(found):
            raise NotFoundError(f"export {job_id[:40]!r} does not exist", "job")
        if found["state"] == "running" and self.clock() - found["updated"] > STALL_S:
            found = {**found, "state": "failed", "error": "stalled"}
        total = found["total"] or 0
        if found["state"] == "done":
            found["percent"] = 100
        elif total:
            found["percent"] = min(99, found["rows"] * 100 // total)
        else:
            found["percent"] = 0
        return found

    def file(self, job_id: str, viewer: Viewer) -> tuple[Path, str]:
        """The finished workbook (path, download name); NotFoundError while not done."""
        found = self.status(job_id, viewer)
        path = self.folder / f"{job_id}.xlsx"
        if found["state"] != "done" or not path.exists():
            raise NotFoundError(f"export {job_id} is not finished", "job")
        return path, str(found["filename"])

    def prune(self) -> int:
        """Remove jobs (and their files) older than ``KEEP_S``; returns how many went."""
        if not self.folder.exists():
            return 0
        gone = 0
        limit = self.clock() - KEEP_S
        for path in self.folder.glob("*.json"):
            try:
                started = json.loads(path.read_text("utf-8")).get("started", 0)
            except (OSError, ValueError):
                started = 0
            if started < limit:
                for leftover in self.folder.glob(f"{path.stem}.*"):
                    leftover.unlink(missing_ok=True)
                gone += 1
        return gone

    # --- the thread ------------------------------------------------------------------------

    def _run(self, status: dict[str, Any], work: Work) -> None:
        path = self.folder / f"{status['id']}.xlsx"
        tmp = path.with_name(path.name + ".part")
        last = [0.0]

        def progress(rows: int) -> None:
            now = self.clock()
            if now - last[0] >= 0.25:  # a status file at most 4 times a second
                last[0] = now
                self._write({**status, "rows": rows, "updated": now})

        try:
            with open(tmp, "wb") as out:
                rows = work(out, progress)
            os.replace(tmp, path)
            now = self.clock()
            self._write({**status, "state": "done", "rows": rows, "updated": now, "finished": now})
        except Exception as exc:  # reported on the page; the thread must not die silently
            tmp.unlink(missing_ok=True)
            now = self.clock()
            self._write(
                {**status, "state": "failed", "error": f"{type(exc).__name__}: {exc}"[:500],
                 "updated": now, "finished": now}
            )  # fmt: skip
