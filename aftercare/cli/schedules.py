"""``aftercare schedules`` (list, show, check) and ``aftercare preview``: the timelines staff
can enroll patients in, and what a patient would get from one."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

import click

from aftercare.app import App
from aftercare.cli import views
from aftercare.cli.group import json_option, parse_flag, pass_app
from aftercare.cli.output import print_json, print_table
from aftercare.errors import InputError, ScheduleError
from aftercare.planner import plan
from aftercare.render import Recipient, render_message
from aftercare.schedules.lint import grades, lint, name_notes
from aftercare.schedules.load import load_timeline
from aftercare.schedules.model import Repeat, Timeline
from aftercare.schedules.readability import GRADE_TARGET
from aftercare.schedules.timeexpr import DISCHARGE, OnDay, format_duration
from aftercare.statuses import Audience
from aftercare.validation import parse_channels, parse_first_name, parse_instant, parse_timezone


@click.group("schedules")
def schedules_group() -> None:
    """The aftercare timelines staff can enroll patients in."""


@schedules_group.command("list")
@json_option
@pass_app
def schedules_list(app: App, as_json: bool) -> None:
    """List the procedures and their timelines."""
    for problem in app.catalog.problems:
        click.echo(f"unavailable: {problem}", err=True)
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
            "audience": list(s.audience),
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
            ("audience", "TO"),
        ],
    )


@schedules_group.command("check")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option("--grades", "show_grades", is_flag=True, help="Print each message's reading grade.")
@json_option
@pass_app
def schedules_check(
    app: App, files: tuple[Path, ...], strict: bool, show_grades: bool, as_json: bool
) -> None:
    """Validate timeline files and lint them for SMS compliance and readability (default: all
    known ones)."""
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
        findings += [
            {"level": "error", "file": e.file, "line": e.line, "message": e.reason}
            for e in app.catalog.problems
        ]
    for timeline in timelines:
        findings += [vars(f) for f in lint(timeline, app.clinic, app.settings.quiet_hours)]
        findings += [vars(f) for f in name_notes(timeline, app.clinic)]
    # Notes say what will happen (a long name shortened), never that something is wrong.
    failing = ("error", "warning") if strict else ("error",)
    errors = [f for f in findings if f["level"] in failing]
    warnings = [f for f in findings if f["level"] == "warning" and f not in errors]
    reading = (
        {t.name: [vars(g) for g in grades(t, app.clinic)] for t in timelines} if show_grades else {}
    )
    if as_json:
        report: dict[str, object] = {"checked": [t.source for t in timelines], "findings": findings}
        print_json(report | ({"grades": reading} if show_grades else {}))
    else:
        for name, rows in reading.items():
            click.echo(f"{name}: reading grade per message (target {GRADE_TARGET:g} or below)")
            print_table(
                rows,
                [
                    ("step", "STEP"),
                    ("language", "LANG"),
                    ("audience", "TO"),
                    ("channel", "CHANNEL"),
                    ("grade", "GRADE"),
                ],
            )
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
@click.option("--discharged-at", metavar="ISO", help="e.g. 2026-11-23T14:30-05:00")
@click.option(
    "--procedure-at", metavar="ISO", help="When the procedure is booked: adds the steps before it."
)
@click.option("--tz", "tz", required=True, metavar="ZONE", help="IANA zone, e.g. America/Chicago")
@click.option("--language", metavar="LANG", help="Default: the timeline's first language.")
@click.option("--first-name", default="Alex", show_default=True)
@click.option("--channels", default="sms,email", show_default=True)
@click.option("--follow-up-at", metavar="ISO", help="A follow-up visit: adds its reminder.")
@click.option("--caregiver", is_flag=True, help="Also show what a caregiver or driver gets.")
@click.option("--caregiver-language", metavar="LANG", help="Default: the patient's language.")
@json_option
@pass_app
def preview(
    app: App,
    name: str,
    discharged_at: str | None,
    procedure_at: str | None,
    follow_up_at: str | None,
    tz: str,
    language: str | None,
    first_name: str,
    channels: str,
    caregiver: bool,
    caregiver_language: str | None,
    as_json: bool,
) -> None:
    """Show the messages a patient (and a caregiver) would get, with their texts, without
    storing anything."""
    timeline = _timeline(app, name)
    discharged = _preview_instant(app, "--discharged-at", discharged_at)
    procedure = _preview_instant(app, "--procedure-at", procedure_at)
    follow_up = _preview_instant(app, "--follow-up-at", follow_up_at)
    # Milestones count from discharge; before it is known, from the procedure's day.
    anchor = discharged or procedure
    if anchor is None:
        raise InputError("--discharged-at", "is required (or --procedure-at, or both)")
    if discharged and procedure and discharged < procedure:
        raise InputError("--discharged-at", "is before --procedure-at")
    zone_name = parse_flag("--tz", parse_timezone, tz)
    lang = _preview_language(timeline, "--language", language)
    people = [(Audience.PATIENT, lang)]
    if caregiver or caregiver_language:
        people.append(
            (
                Audience.CAREGIVER,
                _preview_language(timeline, "--caregiver-language", caregiver_language or lang),
            )
        )
    chosen = parse_flag("--channels", parse_channels, channels)
    name_shown = parse_flag("--first-name", parse_first_name, first_name)
    rows = []
    for audience, language_of in people:
        recipient = Recipient(name_shown, zone_name, language_of, anchor, audience)
        planned = plan(
            timeline,
            zone_name,
            discharged,
            chosen,
            app.settings.quiet_hours,
            procedure_at=procedure,
            follow_up_at=follow_up,
            audience=audience,
        )
        for message in planned:
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
                | {
                    "audience": audience,
                    "language": language_of,
                    "subject": rendered.subject,
                    "text": rendered.text,
                }
            )
    rows.sort(key=lambda row: (row["due_at"], row["audience"] != Audience.PATIENT))
    if as_json:
        print_json(rows)
        return
    for row in rows:
        deferred = "  (moved out of quiet hours)" if row["deferred_for_quiet_hours"] else ""
        to = f"  to {row['audience']} [{row['language']}]" if len(people) > 1 else ""
        click.echo(
            f"{row['local_due']}  {row['channel']:<5}  {row['step']} #{row['occurrence']}"
            f"{to}{deferred}"
        )
        body = row["text"] if row["channel"] == "sms" else f"Subject: {row['subject']}"
        click.echo("    " + body.replace("\n", "\n    "))
    click.echo(f"{len(rows)} message(s)")
    if discharged is None and any(s.at.anchor == DISCHARGE for s in timeline.steps):
        click.echo("the steps after discharge are planned when it is recorded (--discharged-at)")


def _preview_instant(app: App, flag: str, raw: str | None) -> datetime | None:
    if raw is None:
        return None
    when: datetime = parse_flag(flag, parse_instant, raw)
    # Any date may be previewed, but not one whose timeline runs past year 9999 or before year
    # 1 (datetime overflows there): ten years either way is every date staff could mean.
    if abs(when - app.clock.now()) > MAX_PREVIEW_DISTANCE:
        raise InputError(flag, "is more than 10 years from now")
    return when


def _preview_language(timeline: Timeline, flag: str, language: str | None) -> str:
    lang = (language or timeline.languages[0]).lower()
    if lang not in timeline.languages:
        raise InputError(
            flag, f"{lang!r} is not offered (choose from {', '.join(timeline.languages)})"
        )
    return lang


MAX_PREVIEW_DISTANCE = timedelta(days=3653)
