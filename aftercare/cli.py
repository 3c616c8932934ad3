"""The ``aftercare`` command: a thin shell over the modules that do the work.

Errors the user can fix print one line to stderr and exit 1; usage errors exit 2 (click).
"""

from __future__ import annotations

import getpass
import re
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn

import click
from sqlalchemy.exc import IntegrityError, OperationalError

from aftercare import db, views
from aftercare.app import App
from aftercare.config import load_settings
from aftercare.errors import AftercareError, InputError, ScheduleError
from aftercare.lint import lint
from aftercare.output import print_json, print_table
from aftercare.planner import plan
from aftercare.schedules import Repeat, load_timeline
from aftercare.timeexpr import OnDay, format_duration
from aftercare.validation import parse_channels, parse_first_name, parse_instant, parse_timezone


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
            fail(f"database: {str(exc.orig or exc).strip().splitlines()[0]}")
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
    settings = load_settings().with_overrides(database_url=database_url)
    ctx.obj = App(settings, actor=_actor(actor))


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


pass_app = click.make_pass_decorator(App)


# --- db -------------------------------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@pass_app
def db_upgrade(app: App) -> None:
    """Apply all migrations (safe to run again)."""
    before = _revision(app)
    db.upgrade(app.engine)
    after = db.current_revision(app.engine)
    if before == after:
        click.echo(f"database is up to date (revision {after})")
    else:
        click.echo(f"database upgraded from {before or 'empty'} to {after}")


def _revision(app: App) -> str | None:
    return db.current_revision(app.engine)


# --- schedules ------------------------------------------------------------------------------


@cli.group("schedules")
def schedules_group() -> None:
    """The aftercare timelines staff can enroll patients in."""


@schedules_group.command("list")
@json_option
@pass_app
def schedules_list(app: App, as_json: bool) -> None:
    """List the procedures and their timelines."""
    rows = [
        {
            "name": t.name,
            "title": t.title,
            "version": t.version,
            "languages": list(t.languages),
            "steps": len(t.steps),
            "source": t.source,
        }
        for t in app.catalog
    ]
    if as_json:
        print_json(rows)
    else:
        print_table(
            rows,
            [
                ("name", "NAME"),
                ("title", "TITLE"),
                ("version", "VERSION"),
                ("languages", "LANGUAGES"),
                ("steps", "STEPS"),
            ],
        )


@schedules_group.command("show")
@click.argument("name")
@json_option
@pass_app
def schedules_show(app: App, name: str, as_json: bool) -> None:
    """Show the steps of one timeline."""
    timeline = _timeline(app, name)
    steps = [
        {
            "id": s.id,
            "at": str(s.at),
            "repeat": _repeat_text(s.repeat) if s.repeat else None,
            "expires": format_duration(s.expires),
            "channels": list(s.channels),
            "sms": dict(s.sms),
            "email_subject": dict(s.email_subject),
        }
        for s in timeline.steps
    ]
    if as_json:
        print_json(
            {
                "name": timeline.name,
                "title": timeline.title,
                "version": timeline.version,
                "languages": list(timeline.languages),
                "source": timeline.source,
                "steps": steps,
            }
        )
        return
    click.echo(
        f"{timeline.name} (version {timeline.version}): {timeline.title}  [{timeline.source}]"
    )
    print_table(
        steps,
        [
            ("id", "STEP"),
            ("at", "AT"),
            ("repeat", "REPEAT"),
            ("expires", "EXPIRES"),
            ("channels", "CHANNELS"),
        ],
    )


@schedules_group.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@json_option
@pass_app
def schedules_check(app: App, files: tuple[Path, ...], strict: bool, as_json: bool) -> None:
    """Validate timeline files and lint them for SMS compliance (default: all known ones)."""
    timelines, findings = [], []
    if files:
        for path in files:
            try:
                timelines.append(load_timeline(path))
            except ScheduleError as exc:
                findings.append(
                    {"level": "error", "file": exc.file, "line": exc.line, "message": exc.reason}
                )
    else:
        timelines = list(app.catalog)
    for timeline in timelines:
        findings += [vars(f) for f in lint(timeline, app.clinic, app.settings.quiet_hours)]
    errors = [f for f in findings if f["level"] == "error" or strict]
    if as_json:
        print_json({"checked": [t.source for t in timelines], "findings": findings})
    else:
        for f in findings:
            where = f"{f['file']}:{f['line']}" if f["line"] else f["file"]
            click.echo(f"{where}: {f['level']}: {f['message']}", err=True)
        for t in timelines:
            click.echo(
                f"checked {t.source} ({t.name}, {len(t.steps)} steps, {', '.join(t.languages)})"
            )
        click.echo(f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    if errors:
        sys.exit(1)


def _repeat_text(repeat: Repeat) -> str:
    # A repeat runs to the end of its last day, so "day 36" reads better than "day 36 00:00".
    until = f"day {repeat.until.day}" if isinstance(repeat.until, OnDay) else str(repeat.until)
    whole_days = not repeat.every % timedelta(days=1)
    every = f"{repeat.every.days}d" if whole_days else format_duration(repeat.every)
    return f"every {every} until {until}"


def _timeline(app: App, name: str) -> Any:
    try:
        return app.catalog.get(name)
    except KeyError as exc:
        raise InputError("procedure", str(exc.args[0])) from None


# --- preview --------------------------------------------------------------------------------


@cli.command("preview")
@click.argument("name")
@click.option("--discharged-at", required=True, metavar="ISO", help="e.g. 2026-11-23T14:30-05:00")
@click.option("--tz", "tz", required=True, metavar="ZONE", help="IANA zone, e.g. America/Chicago")
@click.option("--language", metavar="LANG", help="Default: the timeline's first language.")
@click.option("--first-name", default="Alex", show_default=True)
@click.option("--channels", default="sms,email", show_default=True)
@json_option
@pass_app
def preview(
    app: App,
    name: str,
    discharged_at: str,
    tz: str,
    language: str | None,
    first_name: str,
    channels: str,
    as_json: bool,
) -> None:
    """Show the messages a patient would get, with their texts, without storing anything."""
    from aftercare.render import Recipient, render_message

    timeline = _timeline(app, name)
    when = _parse("--discharged-at", parse_instant, discharged_at)
    # Any date may be previewed, but not one whose timeline runs past year 9999 or before year
    # 1 (datetime overflows there): ten years either way is every date staff could mean.
    if abs(when - app.clock.now()) > MAX_PREVIEW_DISTANCE:
        raise InputError("--discharged-at", "is more than 10 years from now")
    zone_name = _parse("--tz", parse_timezone, tz)
    lang = (language or timeline.languages[0]).lower()
    if lang not in timeline.languages:
        raise InputError(
            "--language", f"{lang!r} is not offered (choose from {', '.join(timeline.languages)})"
        )
    chosen = _parse("--channels", parse_channels, channels)
    recipient = Recipient(
        _parse("--first-name", parse_first_name, first_name), zone_name, lang, when
    )
    rows = []
    for message in plan(timeline, zone_name, when, chosen, app.settings.quiet_hours):
        rendered = render_message(
            timeline,
            timeline.step_by_id[message.step],
            message.channel,
            recipient,
            app.clinic,
            message.due_at,
        )
        rows.append(
            views.planned_message(message, zone_name)
            | {"subject": rendered.subject, "text": rendered.text}
        )
    if as_json:
        print_json(rows)
        return
    for row in rows:
        deferred = "  (moved out of quiet hours)" if row["deferred_for_quiet_hours"] else ""
        click.echo(
            f"{row['local_due']}  {row['channel']:<5}  {row['step']} #{row['occurrence']}{deferred}"
        )
        body = row["text"] if row["channel"] == "sms" else f"Subject: {row['subject']}"
        click.echo("    " + body.replace("\n", "\n    "))
    click.echo(f"{len(rows)} message(s)")


MAX_PREVIEW_DISTANCE = timedelta(days=3653)


def _parse(flag: str, parse: Any, raw: str) -> Any:
    try:
        return parse(raw)
    except ValueError as exc:
        raise InputError(flag, str(exc)) from None


def main() -> None:
    try:
        cli(prog_name="aftercare")
    except AftercareError as exc:  # raised before a command runs (settings)
        fail(str(exc))


# The other command modules register themselves on ``cli`` when imported.
from aftercare import (  # noqa: E402, F401
    cli_audit,
    cli_doctor,
    cli_inbox,
    cli_patients,
    cli_purge,
    cli_run,
    cli_serve,
    cli_stats,
    demo,
)
