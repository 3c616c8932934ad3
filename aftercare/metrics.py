"""Prometheus text: what the database says of every message, shared by ``aftercare serve`` and
the daemon's own endpoint (``aftercare run --metrics-port``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from aftercare.store import reports, workers

CONTENT_TYPE = "text/plain; version=0.0.4"  # the Prometheus text exposition format
Sample = tuple[dict[str, str], float]


def render_metrics(sessions: sessionmaker[Session], now: datetime) -> str:
    """Prometheus text format, read from the database at scrape time (so every web server and
    daemon sharing a database reports the same numbers)."""
    lines: list[str] = []
    with sessions() as session:
        by_status = reports.messages_by_status(session)
        due = reports.backlog(session, now)
        errors = reports.provider_errors(session)
        last_tick = workers.last_tick(session)
        replies = reports.replies_by_kind(session)
    metric(
        lines,
        "aftercare_messages",
        "gauge",
        "Messages by status and channel.",
        [({"status": s, "channel": c}, n) for s, c, n in by_status],
    )
    metric(
        lines,
        "aftercare_backlog_messages",
        "gauge",
        "Pending messages already due.",
        [({}, due.due)],
    )
    lag = due.lag_seconds(now)
    metric(
        lines,
        "aftercare_dispatch_lag_seconds",
        "gauge",
        "How long the oldest due message has been waiting.",
        [({}, lag)],
    )
    metric(
        lines,
        "aftercare_provider_errors",
        "gauge",
        "Messages whose last attempt failed, by code.",
        [({"code": str(code)}, n) for code, n in errors],
    )
    tick = last_tick.timestamp() if last_tick else 0.0
    metric(
        lines,
        "aftercare_last_tick_timestamp_seconds",
        "gauge",
        "When a dispatcher last ticked (Unix time).",
        [({}, tick)],
    )
    metric(
        lines,
        "aftercare_replies",
        "gauge",
        "Patient replies by kind.",
        [({"kind": k, "urgent": str(bool(u)).lower()}, n) for k, u, n in replies],
    )
    return "\n".join(lines) + "\n"


def metric(
    lines: list[str],
    name: str,
    kind: str,
    help_text: str,
    samples: list[Sample],
) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        lines.append(
            f"{name}{{{label_text}}} {float(value):g}" if labels else f"{name} {float(value):g}"
        )


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
