"""``aftercare staff``: the console's accounts (add, list, disable, enable, reset a password).

Passwords are read from standard input (``--password-stdin``, for scripts) or prompted twice,
never taken as an argument, where they would stay in shell history and ``ps``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from aftercare.accounts import service
from aftercare.accounts.roles import parse_role
from aftercare.app import App
from aftercare.cli.group import json_option, pass_app
from aftercare.cli.output import print_json, print_table
from aftercare.cli.views import iso
from aftercare.errors import InputError
from aftercare.statuses import StaffRole

COLUMNS = [
    ("id", "ID"),
    ("email", "EMAIL"),
    ("name", "NAME"),
    ("role", "ROLE"),
    ("status", "STATUS"),
    ("two_factor", "2FA"),
    ("last_signin_at", "LAST SIGN-IN (UTC)"),
]
password_stdin = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)


@click.group("staff")
def staff_group() -> None:
    """Console accounts: who may sign in, with which role."""


@staff_group.command("add")
@click.option("--email", required=True, help="The account's email; it signs in with it.")
@click.option("--name", required=True, help="The person's name, as the console shows it.")
@click.option(
    "--role",
    required=True,
    metavar="|".join(role.value for role in StaffRole),
    help="viewer reads; nurse also acts on patients; admin also manages staff.",
)
@password_stdin
@pass_app
def add(app: App, email: str, name: str, role: str, password_stdin: bool) -> None:
    """Add an account."""
    with _flags():
        # Every flag is checked before the password is asked for.
        service.parse_staff_email(email)
        service.parse_name(name)
        parse_role(role)
        password = _read_password(password_stdin)
        account = service.add_staff(
            app.sessions, email, name, role, password, app.actor, app.clock.now()
        )
    click.echo(f"added {account.email} ({account.role}), id {account.id}")


@staff_group.command("list")
@json_option
@pass_app
def list_command(app: App, as_json: bool) -> None:
    """List the accounts."""
    rows = [
        {
            "id": a.id,
            "email": a.email,
            "name": a.name,
            "role": a.role,
            "status": "disabled" if a.disabled else "active",
            "two_factor": a.two_factor,
            "last_signin_at": iso(a.last_signin_at),
            "created_at": iso(a.created_at),
        }
        for a in service.list_staff(app.sessions)
    ]
    if as_json:
        print_json(rows)
    else:
        print_table(
            [row | {"two_factor": "on" if row["two_factor"] else "off"} for row in rows], COLUMNS
        )


@staff_group.command("disable")
@click.argument("email")
@pass_app
def disable(app: App, email: str) -> None:
    """Disable an account; its sign-ins end at once."""
    with _flags():
        account = service.disable_staff(app.sessions, email, app.actor, app.clock.now())
    click.echo(f"disabled {account.email}")


@staff_group.command("enable")
@click.argument("email")
@pass_app
def enable(app: App, email: str) -> None:
    """Enable a disabled account again."""
    with _flags():
        account = service.enable_staff(app.sessions, email, app.actor, app.clock.now())
    click.echo(f"enabled {account.email}")


@staff_group.command("reset-password")
@click.argument("email")
@password_stdin
@pass_app
def reset_password(app: App, email: str, password_stdin: bool) -> None:
    """Set a new password; the account's sign-ins end."""
    with _flags():
        service.parse_staff_email(email)
        password = _read_password(password_stdin)
        account = service.reset_password(app.sessions, email, password, app.actor, app.clock.now())
    click.echo(f"new password set for {account.email}")


def _read_password(from_stdin: bool) -> str:
    if not from_stdin:
        return str(click.prompt("Password", hide_input=True, confirmation_prompt="Repeat it"))
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise InputError("password", "standard input has no password on its first line")
    return line


@contextmanager
def _flags() -> Iterator[None]:
    """The service names fields (``email``); on the command line they are flags (``--email``),
    but for the password, which is never one."""
    try:
        yield
    except InputError as exc:
        flag = exc.field if exc.field == "password" else f"--{exc.field}"
        raise InputError(flag, exc.problem) from None
