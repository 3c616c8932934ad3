"""``aftercare run``: the daemon (or one pass with --once)."""

from __future__ import annotations

import os
import socket
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import click

from aftercare import logs
from aftercare.app import App
from aftercare.channels.base import Channel
from aftercare.channels.registry import console_channels, missing_settings, provider_channels
from aftercare.cli.group import pass_app
from aftercare.config import MAX_CONCURRENCY
from aftercare.daemon import Daemon, catch_up, say_stopped, sqlite_dispatch_lock
from aftercare.dispatch import Dispatcher, DispatchOptions
from aftercare.errors import AftercareError
from aftercare.store import reports
from aftercare.web.daemon_metrics import MetricsServer


@click.command("run")
@click.option("--once", is_flag=True, help="Send what is due now, then exit (for cron).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print messages through the console channel instead of any provider.",
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.5),
    default=5.0,
    show_default=True,
    help="Seconds between looks for rows added by other processes.",
)
@click.option(
    "--senders",
    type=click.IntRange(1, MAX_CONCURRENCY),
    help="Sends in flight at once (default: AFTERCARE_SMS_CONCURRENCY, 64).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve this daemon's /metrics and /healthz on this port (0: any free port).",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@pass_app
def run(
    app: App,
    once: bool,
    dry_run: bool,
    poll: float,
    senders: int | None,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Send reminders when they are due: the daemon."""
    logs.configure(app.settings.log_format, app.settings.log_level)
    sessions = app.sessions
    channels = _channels(app, dry_run)
    single = app.engine.dialect.name == "sqlite"
    with ExitStack() as stack:
        if single and app.engine.url.database not in (None, "", ":memory:"):
            stack.enter_context(sqlite_dispatch_lock(str(app.engine.url.database)))
        worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        dispatcher = Dispatcher(
            sessions,
            channels,
            app.catalog,
            app.settings,
            app.clock,
            worker,
            DispatchOptions(senders=senders),
        )
        if once:
            started_at = app.clock.now()
            try:
                tally = catch_up(dispatcher, started_at, single)
            finally:
                say_stopped(dispatcher, started_at)
                dispatcher.close()
            click.echo(_summary(tally))
            return
        database = app.engine.url.database if single else None
        watched = Path(database).resolve() if database and database != ":memory:" else None
        daemon = Daemon(dispatcher, poll=poll, single=single, database_file=watched)
        if metrics_port is not None:
            stack.enter_context(_metrics_server(daemon, metrics_host, metrics_port))
        daemon.run()
        if daemon.database_lost:
            raise AftercareError(f"database: {watched} was deleted while the daemon ran")


def _metrics_server(daemon: Daemon, host: str, port: int) -> MetricsServer:
    try:
        return MetricsServer(daemon, host, port)
    except OSError as exc:
        raise AftercareError(
            f"--metrics-port: cannot listen on {host}:{port} ({exc.strerror or exc})"
        ) from None


def _channels(app: App, dry_run: bool) -> dict[str, Channel]:
    if dry_run:
        click.echo(
            "dry run: messages are printed here and recorded as sent; no provider is "
            "contacted and no patient receives anything",
            err=True,
        )
        return console_channels(app.clock.now)
    channels = provider_channels(app.settings)
    waiting = _pending_by_channel(app)
    for name, missing in missing_settings(app.settings).items():
        if missing:
            click.echo(
                f"warning: {name} channel is off (missing {', '.join(missing)}); "
                f"{waiting.get(name, 0)} pending {name} message(s) will wait",
                err=True,
            )
    if not channels:
        raise AftercareError(
            "no channel is configured: set the Twilio settings for SMS and/or "
            "AFTERCARE_SMTP_URL and AFTERCARE_EMAIL_FROM for email (or use --dry-run)"
        )
    return channels


def _pending_by_channel(app: App) -> Counter[str]:
    with app.sessions() as session:
        return Counter(reports.pending_by_channel(session))


def _summary(tally: Counter[str]) -> str:
    tally = +tally  # drop the zero counts
    if not tally:
        return "nothing was due"
    return "done: " + ", ".join(f"{count} {status}" for status, count in sorted(tally.items()))
