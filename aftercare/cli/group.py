"""The ``aftercare`` click group and what every command shares: the App, errors, ``--json``.

Errors the user can fix print one line to stderr and exit 1; usage errors exit 2 (click).
"""

from __future__ import annotations

import getpass
import re
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click
from sqlalchemy.exc import IntegrityError, OperationalError

from aftercare import db
from aftercare.app import App
from aftercare.config import load_settings
from aftercare.errors import AftercareError, InputError

S = TypeVar("S")
T = TypeVar("T")


class AftercareGroup(click.Group):
    """Turns the errors a user can fix into one line on stderr and exit code 1."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        _refuse_undecodable(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AftercareError as exc:
            fail(str(exc))
        except OperationalError as exc:
            app = ctx.obj
            at = f" ({db.where(app.engine)})" if isinstance(app, App) else ""
            fail(f"database: {str(exc.orig or exc).strip().splitlines()[0]}{at}")
        except IntegrityError:  # e.g. a concurrent enroll of the same patient won the race
            fail("database: the change conflicts with an existing record; try again")
        finally:
            app = ctx.obj
            if isinstance(app, App):
                app.close()


def _refuse_undecodable(args: list[str]) -> None:
    """A usage error (exit 2) for an argument that is not text in the terminal's encoding.

    Python turns bytes it cannot decode (a Latin-1 "é" typed into a UTF-8 terminal) into lone
    surrogates; passed on, they would fail with a traceback wherever the value is encoded again
    (the database driver, the terminal). The error names the flag the value belongs to.
    """
    for index, arg in enumerate(args):
        if not _SURROGATE.search(arg):
            continue
        flag, _, value = arg.partition("=")
        if not (arg.startswith("--") and value):
            before = args[index - 1] if index else ""
            flag = before if before.startswith("-") else f"argument {index + 1}"
        raise click.UsageError(f"{flag}: is not valid text (bytes of another encoding?)", ctx=None)


_SURROGATE = re.compile("[\ud800-\udfff]")
# Event.actor holds 64 characters; "staff:" takes six of them.
MAX_ACTOR = 58


def _actor(name: str | None) -> str:
    """``staff:NAME`` for the audit trail; an unusable ``--as`` is an input error."""
    if name is None:
        return f"staff:{_login_name()[:MAX_ACTOR]}"  # a login name is what it is: trimmed
    cleaned = " ".join(name.split())
    if not cleaned:
        raise InputError("--as", "is empty")
    if len(cleaned) > MAX_ACTOR:
        raise InputError("--as", f"is longer than {MAX_ACTOR} characters")
    if not cleaned.isprintable():
        raise InputError("--as", "contains control characters")
    return f"staff:{cleaned}"


def fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(f)


@click.group(cls=AftercareGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", metavar="URL", help="Overrides AFTERCARE_DATABASE_URL.")
@click.option(
    "--as",
    "actor",
    metavar="NAME",
    help="Who is acting, for the audit trail (default: login name).",
)
@click.version_option(package_name="aftercare")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, actor: str | None) -> None:
    """Aftercare reminders after kyphoplasty and vertebroplasty, by SMS and email."""
    if isinstance(ctx.obj, App):  # tests pass a ready-made App (with its own clock)
        return
    # `doctor` reports malformed settings among its checks; every other command stops on one.
    lenient = ctx.invoked_subcommand == "doctor"
    settings = load_settings(lenient=lenient).with_overrides(database_url=database_url)
    ctx.obj = App(settings, actor=_actor(actor), create_database=False)


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


pass_app = click.make_pass_decorator(App)


def parse_flag(flag: str, parse: Callable[[S], T], raw: S) -> T:
    """``parse(raw)``, with its ValueError turned into an InputError naming ``flag``."""
    try:
        return parse(raw)
    except ValueError as exc:
        raise InputError(flag, str(exc)) from None
