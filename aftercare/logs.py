"""Logging set-up: text for people, JSON lines for log shippers. Never patient data (callers log
ids, counts and codes only; see DESIGN.md "Minimum necessary")."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry |= getattr(record, "fields", {})
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(entry, default=str)


def configure(log_format: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_libraries()


def quiet_libraries() -> None:
    """Hold chatty libraries at WARNING: APScheduler logs every job run at INFO, and the HTTP
    clients' DEBUG/INFO lines carry request URLs and bodies with phone numbers in them."""
    for name in ("apscheduler", "alembic", "urllib3", "twilio", "twilio.http_client"):
        logging.getLogger(name).setLevel(logging.WARNING)
