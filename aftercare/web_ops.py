"""Operations endpoints: /healthz for load balancers, /metrics for Prometheus."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Request, Response

from aftercare import stats
from aftercare.models import Worker
from aftercare.web import Web, route

# /healthz fails when no dispatcher has ticked for this long (the daemon ticks at least every
# --poll seconds, 5 by default).
TICK_STALE_AFTER = timedelta(minutes=2)


@route("healthz")
def healthz(web: Web, request: Request) -> Response:
    now = web.app.clock.now()
    checks: dict[str, str] = {}
    try:
        with web.app.sessions() as session:
            session.execute(text("SELECT 1"))
            last_tick = session.scalar(select(func.max(Worker.last_tick_at)))
        checks["database"] = "ok"
        checks["dispatcher"] = _tick_state(last_tick, now)
    except SQLAlchemyError as exc:
        checks["database"] = f"unreachable ({type(exc).__name__})"
        checks["dispatcher"] = "unknown"
    healthy = all(value == "ok" for value in checks.values())
    body = json.dumps({"status": "ok" if healthy else "failing", "checks": checks})
    return Response(body, status=200 if healthy else 503, mimetype="application/json")


def _tick_state(last_tick: datetime | None, now: datetime) -> str:
    if last_tick is None:
        return "never ticked (is 'aftercare run' running?)"
    age = now - last_tick
    if age > TICK_STALE_AFTER:
        return f"last tick {int(age.total_seconds())} s ago"
    return "ok"


@route("metrics")
def metrics(web: Web, request: Request) -> Response:
    try:
        body = render_metrics(web)
    except SQLAlchemyError:
        return Response("database unreachable\n", status=503, mimetype="text/plain")
    return Response(body, mimetype="text/plain; version=0.0.4")


def render_metrics(web: Web) -> str:
    """Prometheus text format, read from the database at scrape time (so every web server and
    daemon sharing a database reports the same numbers)."""
    now = web.app.clock.now()
    lines: list[str] = []
    with web.app.sessions() as session:
        by_status = stats.messages_by_status(session)
        due = stats.backlog(session, now)
        errors = stats.provider_errors(session)
        last_tick = session.scalar(select(func.max(Worker.last_tick_at)))
        replies = stats.replies_by_kind(session)
    _metric(
        lines,
        "aftercare_messages",
        "gauge",
        "Messages by status and channel.",
        [({"status": s, "channel": c}, n) for s, c, n in by_status],
    )
    _metric(
        lines,
        "aftercare_backlog_messages",
        "gauge",
        "Pending messages already due.",
        [({}, due.due)],
    )
    lag = due.lag_seconds(now)
    _metric(
        lines,
        "aftercare_dispatch_lag_seconds",
        "gauge",
        "How long the oldest due message has been waiting.",
        [({}, lag)],
    )
    _metric(
        lines,
        "aftercare_provider_errors",
        "gauge",
        "Messages whose last attempt failed, by code.",
        [({"code": str(code)}, n) for code, n in errors],
    )
    tick = last_tick.timestamp() if last_tick else 0.0
    _metric(
        lines,
        "aftercare_last_tick_timestamp_seconds",
        "gauge",
        "When a dispatcher last ticked (Unix time).",
        [({}, tick)],
    )
    _metric(
        lines,
        "aftercare_replies",
        "gauge",
        "Patient replies by kind.",
        [({"kind": k, "urgent": str(bool(u)).lower()}, n) for k, u, n in replies],
    )
    return "\n".join(lines) + "\n"


def _metric(
    lines: list[str],
    name: str,
    kind: str,
    help_text: str,
    samples: list[tuple[dict[str, str], float]],
) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        lines.append(
            f"{name}{{{label_text}}} {float(value):g}" if labels else f"{name} {float(value):g}"
        )


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
