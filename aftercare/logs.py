"""Logging set-up: text for people, JSON lines for log shippers. Never patient data (callers log
ids, counts and codes only; see DESIGN.md "Minimum necessary").

Exceptions are where data slips in: SQLAlchemy prints a failed statement's bound values
(``[parameters: {'body': ...}]``) and PostgreSQL explains a constraint violation with the row's
values (``DETAIL:  Key (channel, address)=(email, ...)``). :class:`Redact` sits on every handler
and removes both from the message and the traceback, whatever the format, keeping what an operator
needs: the exception's type, the statement's shape and the ids the caller logged.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

LEVELS = ("debug", "info", "warning", "error")

# One line each: SQLAlchemy renders the parameters with repr(), so a newline in a value is "\n".
_PARAMETERS = re.compile(r"^\[parameters: .*$", re.MULTILINE)
# PostgreSQL's DETAIL and CONTEXT lines quote the values of the row (psycopg puts them in str()).
_DETAIL = re.compile(r"^(DETAIL|CONTEXT):.*$", re.MULTILINE)
# The one main message that quotes its input: 'invalid input syntax for type integer: "x"'.
_QUOTED_INPUT = re.compile(r'(for type \w+): ".*"')


def redact(text: str) -> str:
    """``text`` without statement parameters, DETAIL/CONTEXT lines or quoted input values."""
    text = _PARAMETERS.sub("[parameters: hidden]", text)
    text = _DETAIL.sub(r"\1: hidden", text)
    return _QUOTED_INPUT.sub(r'\1: "hidden"', text)


class Redact(logging.Filter):
    """Rewrites each record's message and exception text through :func:`redact` before any
    formatter sees it. On the handler (not a logger), so records of every library are covered."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry |= getattr(record, "fields", {})
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text = record.exc_text or redact(self.formatException(record.exc_info))
            # The type and the first line say what failed; the traceback says where.
            entry["exception"] = f"{type(exc).__module__}.{type(exc).__qualname__}"
            entry["error"] = redact(str(exc)).strip().split("\n", 1)[0]
            statement = getattr(exc, "statement", None)  # SQLAlchemy's, with placeholders only
            if isinstance(statement, str):
                entry["statement"] = " ".join(statement.split())
            entry["traceback"] = text
        return json.dumps(entry, default=str)


def configure(log_format: str, level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(Redact())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    quiet_libraries()


class _SkippedRuns(logging.Filter):
    """APScheduler warns at every poll interval that passes while a long dispatch pass runs
    ("maximum number of running instances reached"): the pass is busy, which is not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_SKIPPED_RUNS = _SkippedRuns()


def quiet_libraries() -> None:
    """Hold chatty libraries at WARNING: APScheduler logs every job run at INFO, and the HTTP
    clients' DEBUG/INFO lines carry request URLs and bodies with phone numbers in them."""
    for name in ("apscheduler", "alembic", "urllib3", "twilio", "twilio.http_client"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("apscheduler.scheduler").addFilter(_SKIPPED_RUNS)
