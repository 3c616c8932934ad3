"""``aftercare db``: the database schema."""

from __future__ import annotations

import click

from aftercare import db
from aftercare.app import App
from aftercare.cli.group import pass_app


@click.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Apply all migrations (safe to run again)."""
    path = db.sqlite_file(app.engine)
    before = _revision(app) if path is None or path.exists() else None
    db.upgrade(app.engine)
    after = db.current_revision(app.engine)
    if before == after:
        click.echo(f"database is up to date (revision {after})")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to {after}")


def _revision(app: App) -> str | None:
    return db.current_revision(app.engine)
