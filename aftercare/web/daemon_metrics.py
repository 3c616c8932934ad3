"""The daemon's own ``/metrics`` and ``/healthz`` (``aftercare run --metrics-port``).

``aftercare serve`` reports what the database says; a dispatcher can only say from inside
whether it is ticking and what it sent. Prometheus scrapes every daemon here for that, plus the
same database-wide figures as the web server (so a deployment without a web server still has
them). A tiny single-threaded server: it answers one scrape every few seconds, nothing else.
"""

from __future__ import annotations

import json
import logging
import resource
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.core import Metric
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Request, Response

from aftercare.daemon import Daemon
from aftercare.metrics import CONTENT_TYPE, Sample, exposition, metric, render_metrics
from aftercare.web.ops import TICK_STALE_AFTER

log = logging.getLogger("aftercare.daemon")


def daemon_metrics(daemon: Daemon) -> str:
    """This process's counters; then the database's figures, unless it cannot be read."""
    families: list[Metric] = []
    last_tick = daemon.last_tick.timestamp() if daemon.last_tick else 0.0
    counters: list[tuple[str, str, str, list[Sample]]] = [
        ("aftercare_daemon_ticks_total", "counter", "Dispatch passes run.", [({}, daemon.ticks)]),
        (
            "aftercare_daemon_failed_ticks_total",
            "counter",
            "Dispatch passes that failed (database unavailable, say).",
            [({}, daemon.failed_ticks)],
        ),
        (
            "aftercare_daemon_messages_total",
            "counter",
            "Messages this daemon settled, by outcome.",
            [({"outcome": k}, v) for k, v in sorted(daemon.outcomes.items())],
        ),
        (
            "aftercare_daemon_last_tick_timestamp_seconds",
            "gauge",
            "When this daemon last ran a dispatch pass (Unix time).",
            [({}, last_tick)],
        ),
        (
            "aftercare_daemon_max_rss_bytes",
            "gauge",
            "Peak resident memory of this daemon.",
            [({}, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)],
        ),
    ]
    for name, kind, help_text, samples in counters:
        metric(families, name, kind, help_text, samples)
    text = exposition(families)
    try:
        shared = render_metrics(daemon.dispatcher.sessions, daemon.dispatcher.clock.now())
    except SQLAlchemyError:
        return text + _database_up(False)
    return text + _database_up(True) + shared


def _database_up(up: bool) -> str:
    families: list[Metric] = []
    metric(families, "aftercare_database_up", "gauge", "Whether the database answered.", [({}, up)])
    return exposition(families)


def healthy(daemon: Daemon) -> bool:
    """Ticked recently: the scheduler runs and a pass finished (failed or not) lately."""
    last = daemon.last_tick
    return last is not None and daemon.dispatcher.clock.now() - last <= TICK_STALE_AFTER


def wsgi_app(daemon: Daemon) -> Callable[[dict[str, Any], Any], Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        if request.path == "/metrics":
            response = Response(daemon_metrics(daemon), mimetype=CONTENT_TYPE)
        elif request.path == "/healthz":
            ok = healthy(daemon)
            body = json.dumps({"status": "ok" if ok else "failing", "ticks": daemon.ticks})
            response = Response(body, status=200 if ok else 503, mimetype="application/json")
        else:
            response = Response("Not Found\n", status=404, mimetype="text/plain")
        return response(environ, start_response)

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # scrapes are not news
        return None


class MetricsServer:
    """Serves :func:`wsgi_app` on a thread until :meth:`stop`."""

    def __init__(self, daemon: Daemon, host: str, port: int) -> None:
        self._host = host
        self._server: WSGIServer = make_server(
            host, port, wsgi_app(daemon), handler_class=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._server.server_port}"

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("daemon metrics at %s/metrics", self.url)
        return self

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
