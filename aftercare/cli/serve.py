"""``aftercare serve``: the web side (webhooks, unsubscribe, health, metrics, staff console)."""

from __future__ import annotations

import click

from aftercare import alerts, logs
from aftercare.accounts import service
from aftercare.app import App
from aftercare.cli.group import pass_app
from aftercare.errors import InputError, SettingsError


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
@pass_app
def serve(app: App, host: str, port: int, threads: int) -> None:
    """Serve the staff console, Twilio webhooks, unsubscribe links, /healthz and /metrics
    (waitress WSGI server)."""
    import waitress

    from aftercare.web import create_app
    from aftercare.web.server import server_options

    logs.configure(app.settings.log_format, app.settings.log_level)
    app.sessions  # noqa: B018 - migrate (SQLite) or refuse (unmigrated PostgreSQL) before listening
    _first_admin(app)
    click.echo(
        f"serving on http://{host}:{port} (public URL: {app.settings.public_url or 'not set'})",
        err=True,
    )
    try:
        waitress.serve(create_app(app), host=host, port=port, **server_options(threads))
    finally:
        alerts.wait_for_staff_emails()  # urgent replies still being emailed to staff


def _first_admin(app: App) -> None:
    """On a database with no staff accounts, the first admin from AFTERCARE_ADMIN_EMAIL and
    AFTERCARE_ADMIN_PASSWORD_FILE; without them, a hint how to make one."""
    settings = app.settings
    if settings.admin_email and not settings.admin_password:
        raise SettingsError("AFTERCARE_ADMIN_PASSWORD_FILE: is needed with AFTERCARE_ADMIN_EMAIL")
    if not settings.admin_email:
        if not service.list_staff(app.sessions):
            click.echo(
                "no staff accounts yet: add one with 'aftercare staff add --role admin', or set "
                "AFTERCARE_ADMIN_EMAIL and AFTERCARE_ADMIN_PASSWORD_FILE",
                err=True,
            )
        return
    try:
        made = service.ensure_first_admin(
            app.sessions, settings.admin_email, settings.admin_password or "", app.clock.now()
        )
    except InputError as exc:
        raise SettingsError(f"AFTERCARE_ADMIN_PASSWORD_FILE: {exc.problem}") from None
    if made is not None:
        click.echo(f"created the first admin account, {made.email}", err=True)
