"""Structured logs for the agent and the cloud services: one JSON object per line (``ts``,
``level``, ``logger``, ``event`` and the event's fields), so a journal can be searched by meter
or command.

Use :func:`event` rather than formatting values into a message string.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FIELDS = "gv_fields"


def event(logger: logging.Logger, level: int, name: str, **fields: Any) -> None:
    """Log ``name`` with ``fields`` (rendered as key=value by plain handlers, JSON by ours)."""
    if not logger.isEnabledFor(level):
        return
    text = " ".join(f"{k}={v!r}" for k, v in fields.items())
    logger.log(level, "%s %s", name, text, extra={_FIELDS: {"event": name, **fields}})


class JsonFormatter(logging.Formatter):
    """Formats records as JSON lines; records from :func:`event` keep their fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, _FIELDS, None)
        if fields:
            out.update(fields)
        else:
            out["event"] = record.getMessage()
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def setup(level: str = "info", stream: Any = None) -> None:
    """Send every gridvend log record to ``stream`` (stderr) as JSON lines."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.Formatter.converter = time.gmtime
