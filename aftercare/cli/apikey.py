"""``aftercare apikey``: keys for the REST API, shown once and stored as digests."""

from __future__ import annotations

import click

from aftercare.api import keys
from aftercare.app import App
from aftercare.cli.group import json_option, parse_flag, pass_app
from aftercare.cli.output import print_json, print_table
from aftercare.cli.views import iso
from aftercare.db import transaction
from aftercare.errors import InputError, NotFoundError
from aftercare.store import apikeys as store


@click.group("apikey")
def apikey_group() -> None:
    """Keys for the REST API (/api/v1)."""


@apikey_group.command("create")
@click.option("--name", required=True, help="Who uses it (e.g. mirth); in the audit log.")
@click.option("--role", required=True, help=f"One of: {', '.join(keys.ROLES)}.")
@json_option
@pass_app
def create(app: App, name: str, role: str, as_json: bool) -> None:
    """Make a key; it is printed once and cannot be shown again."""
    name = parse_flag("--name", keys.parse_name, name)
    role = parse_flag("--role", keys.parse_role, role)
    new = keys.generate()
    with transaction(app.sessions) as session:
        if store.name_taken(session, name):
            raise InputError("--name", f"a key named {name!r} exists (revoke it first)")
        store.create(session, new.key_id, name, role, new.digest, app.actor, app.clock.now())
    if as_json:
        print_json({"name": name, "role": role, "key": new.secret})
        return
    click.echo(new.secret)
    click.echo(f"key {name!r} ({role}) created; it is shown only this once", err=True)


@apikey_group.command("list")
@json_option
@pass_app
def list_keys(app: App, as_json: bool) -> None:
    """Keys, their roles and when each was last used (never the keys themselves)."""
    with app.sessions() as session:
        rows = [
            {k: iso(v) if k.endswith("_at") else v for k, v in row.items()}
            for row in store.listing(session)
        ]
    if as_json:
        print_json(rows)
        return
    print_table(
        rows,
        [
            ("name", "NAME"),
            ("role", "ROLE"),
            ("id", "ID"),
            ("last_used_at", "LAST USED"),
            ("revoked_at", "REVOKED"),
        ],
    )


@apikey_group.command("revoke")
@click.argument("name")
@pass_app
def revoke(app: App, name: str) -> None:
    """Stop a key from working, at once."""
    with transaction(app.sessions) as session:
        if not store.revoke(session, name, app.actor, app.clock.now()):
            raise NotFoundError(f"name: no active key named {name!r}")
    click.echo(f"key {name!r} revoked")
