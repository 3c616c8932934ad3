"""Operations endpoints: /healthz for load balancers, /metrics for Prometheus."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from flask import Blueprint, Response
from sqlalchemy.exc import SQLAlchemyError

from aftercare.metrics import CONTENT_TYPE, render_metrics
from aftercare.store import workers
from aftercare.web.http import aftercare_app

# /healthz fails when no dispatcher has ticked for this long (the daemon ticks at least every
# --poll seconds, 5 by default).
TICK_STALE_AFTER = timedelta(minutes=2)

blueprint = Blueprint("ops", __name__)


@blueprint.get("/healthz", provide_automatic_options=False)
def healthz() -> Response:
    app = aftercare_app()
    now = app.clock.now()
    checks: dict[str, str] = {}
    try:
        with app.sessions() as session:
            workers.ping(session)
            last_tick = workers.last_tick(session)
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


@blueprint.get("/metrics", provide_automatic_options=False)
def metrics() -> Response:
    app = aftercare_app()
    try:
        body = render_metrics(app.sessions, app.clock.now())
    except SQLAlchemyError:
        return Response("database unreachable\n", status=503, mimetype="text/plain")
    return Response(body, mimetype=CONTENT_TYPE)
