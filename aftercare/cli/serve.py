"""``aftercare serve``: the web side (webhooks, unsubscribe, health, metrics)."""

from __future__ import annotations

import click

from aftercare import alerts, logs
from aftercare.app import App
from aftercare.cli.group import pass_app


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
@pass_app
def serve(app: App, host: str, port: int, threads: int) -> None:
    """Serve Twilio webhooks, unsubscribe links, /healthz and /metrics (waitress WSGI server)."""
    import waitress

    from aftercare.web import create_app

    logs.configure(app.settings.log_format)
    app.sessions  # noqa: B018 - migrate (SQLite) or refuse (unmigrated PostgreSQL) before listening
    click.echo(
        f"serving on http://{host}:{port} (public URL: {app.settings.public_url or 'not set'})",
        err=True,
    )
    try:
        waitress.serve(
            create_app(app),
            host=host,
            port=port,
            threads=threads,
            ident="aftercare",
            clear_untrusted_proxy_headers=True,
        )
    finally:
        alerts.wait_for_staff_emails()  # urgent replies still being emailed to staff
