"""``aftercare schedules`` (list, show, check) and ``aftercare preview``: the timelines staff
can enroll patients in, and what a patient would get from one."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import click

from aftercare.app import App
from aftercare.cli import views
from aftercare.cli.group import json_option, parse_flag, pass_app
from aftercare.cli.output import print_json, print_table
from aftercare.errors import InputError, ScheduleError
from aftercare.preview import preview as preview_messages
from aftercare.render import Recipient
from aftercare.schedules.lint import lint, name_notes
from aftercare.schedules.load import load_timeline
from aftercare.schedules.model import Repeat, Timeline
from aftercare.schedules.timeexpr import OnDay, format_duration
from aftercare.validation import parse_channels, parse_first_name, parse_instant, parse_timezone


@click.group("schedules")
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
        findings += [vars(f) for f in name_notes(timeline, app.clinic)]
    # Notes say what will happen (a long name shortened), never that something is wrong.
    failing = ("error", "warning") if strict else ("error",)
    errors = [f for f in findings if f["level"] in failing]
    warnings = [f for f in findings if f["level"] == "warning" and f not in errors]
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
        click.echo(f"{len(errors)} error(s), {len(warnings)} warning(s)")
    if errors:
        sys.exit(1)


def _repeat_text(repeat: Repeat) -> str:
    # A repeat runs to the end of its last day, so "day 36" reads better than "day 36 00:00".
    until = f"day {repeat.until.day}" if isinstance(repeat.until, OnDay) else str(repeat.until)
    whole_days = not repeat.every % timedelta(days=1)
    every = f"{repeat.every.days}d" if whole_days else format_duration(repeat.every)
    return f"every {every} until {until}"


def _timeline(app: App, name: str) -> Timeline:
    try:
        return app.catalog.get(name)
    except KeyError as exc:
        raise InputError("procedure", str(exc.args[0])) from None


# --- preview --------------------------------------------------------------------------------


@click.command("preview")
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
    timeline = _timeline(app, name)
    when = parse_flag("--discharged-at", parse_instant, discharged_at)
    # Any date may be previewed, but not one whose timeline runs past year 9999 or before year
    # 1 (datetime overflows there): ten years either way is every date staff could mean.
    if abs(when - app.clock.now()) > MAX_PREVIEW_DISTANCE:
        raise InputError("--discharged-at", "is more than 10 years from now")
    zone_name = parse_flag("--tz", parse_timezone, tz)
    lang = (language or timeline.languages[0]).lower()
    if lang not in timeline.languages:
        raise InputError(
            "--language", f"{lang!r} is not offered (choose from {', '.join(timeline.languages)})"
        )
    chosen = parse_flag("--channels", parse_channels, channels)
    recipient = Recipient(
        parse_flag("--first-name", parse_first_name, first_name), zone_name, lang, when
    )
    rows = [
        views.planned_message(m.planned, zone_name) | {"subject": m.subject, "text": m.text}
        for m in preview_messages(timeline, recipient, chosen, app.clinic, app.settings.quiet_hours)
    ]
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
