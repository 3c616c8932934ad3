"""Staff commands: enroll, import, patients, cancel, pause, resume, reschedule."""

from __future__ import annotations

import codecs
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session, sessionmaker

from aftercare.app import App
from aftercare.cli import views
from aftercare.cli.group import json_option, parse_flag, pass_app
from aftercare.cli.ids import enrollment_argument, resolve_enrollment
from aftercare.cli.output import print_json, print_table
from aftercare.db import transaction
from aftercare.enrollment import parse_request
from aftercare.errors import AftercareError, InputError
from aftercare.importer import ImportReport, import_csv
from aftercare.statuses import EnrollmentStatus
from aftercare.store import lifecycle
from aftercare.store.enrollments import Enrolled, Refused, enroll_many
from aftercare.validation import check_discharge_time, parse_instant, parse_reason

# Field names of the enrollment contract -> the flags staff typed, for error messages.
FLAGS = {
    "first_name": "--first-name",
    "phone": "--phone",
    "email": "--email",
    "timezone": "--tz",
    "procedure": "--procedure",
    "discharged_at": "--discharged-at",
    "language": "--language",
    "channels": "--channels",
    "external_id": "--external-id",
}
LIST_COLUMNS = [
    ("id", "ID"),
    ("status", "STATUS"),
    ("procedure", "PROCEDURE"),
    ("first_name", "NAME"),
    ("phone", "PHONE"),
    ("timezone", "TIME ZONE"),
    ("discharged_at", "DISCHARGED (UTC)"),
    ("messages", "MESSAGES"),
]


@click.command("enroll")
@click.option("--first-name", required=True)
@click.option("--phone", required=True, metavar="E164")
@click.option("--email", metavar="ADDRESS")
@click.option(
    "--tz", "timezone", required=True, metavar="ZONE", help="IANA zone, e.g. America/Chicago"
)
@click.option("--procedure", required=True, metavar="NAME", help="See 'aftercare schedules list'.")
@click.option(
    "--discharged-at", required=True, metavar="ISO", help="With offset: 2026-11-23T14:30-05:00"
)
@click.option("--language", metavar="LANG", help="Default: the timeline's first language.")
@click.option("--channels", metavar="LIST", help="sms,email (default: sms, plus email if given).")
@click.option(
    "--external-id", metavar="MRN", help="The clinic's patient id; makes enrolling idempotent."
)
@click.option(
    "--reschedule",
    is_flag=True,
    help="If the patient is enrolled in this procedure already, move it to this discharge time.",
)
@json_option
@pass_app
def enroll(app: App, /, as_json: bool, reschedule: bool, **fields: Any) -> None:
    """Enroll one patient at discharge and plan their reminders."""
    app.create_database = True  # the first enrollment may start a SQLite database
    now = app.clock.now()
    try:
        request = parse_request(fields, app.catalog, now)
    except InputError as exc:
        raise as_flag(exc) from None
    with transaction(app.sessions) as session:
        (result,) = enroll_many(session, [request], app.settings, now, app.actor)
        moved = isinstance(result, Refused)
        if isinstance(result, Refused):
            if not (reschedule and result.error.field == "discharged_at"):
                raise as_flag(result.error)
            lifecycle.reschedule(
                session,
                result.enrollment_id,
                request.discharged_at,
                app.catalog,
                app.settings,
                app.actor,
                now,
                "enroll --reschedule",
            )
        summary = views.show_enrollment(session, result.enrollment_id)
    summary["created"] = isinstance(result, Enrolled) and result.created
    summary["rescheduled"] = moved
    if as_json:
        print_json(summary)
        return
    verb = "enrolled" if summary["created"] else "already enrolled (nothing changed)"
    click.echo(
        f"{'rescheduled' if moved else verb}: id {summary['id']}, {request.timeline.name}, "
        f"{len(summary['messages'])} messages"
    )
    _print_messages(summary["messages"])


def as_flag(error: InputError) -> InputError:
    """The error with its field named as the flag staff typed."""
    return InputError(FLAGS.get(error.field, error.field), error.problem)


def _print_messages(messages: list[dict[str, Any]]) -> None:
    print_table(
        messages,
        [
            ("local_due", "DUE (PATIENT TIME)"),
            ("channel", "CHANNEL"),
            ("step", "STEP"),
            ("occurrence", "#"),
            ("status", "STATUS"),
            ("attempts", "TRIES"),
        ],
    )


@click.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check every row; write nothing.")
@json_option
@pass_app
def import_command(app: App, file: Path, dry_run: bool, as_json: bool) -> None:
    """Enroll the patients of a CSV file (columns: first_name,phone,email,timezone,procedure,
    discharged_at,language,channels,external_id). Bad rows are reported and skipped."""
    app.create_database = not dry_run  # a dry run never creates one (see _sessions_for_import)
    with _regular_file(file) as path:
        _check_utf8(path)
        report = _import(app, path, dry_run, show_bar=not as_json)
    result = {
        "dry_run": dry_run,
        "rows": report.rows,
        "enrolled": report.enrolled,
        "existing": report.existing,
        "messages": report.messages,
        "errors": [{"line": line, "error": e} for line, e in report.bad],
    }
    if as_json:
        print_json(result)
    else:
        for line, error in report.bad:
            click.echo(f"{file}:{line}: {error}", err=True)
        verb = "would enroll" if dry_run else "enrolled"
        click.echo(
            f"{report.rows} rows: {verb} {report.enrolled}, already enrolled {report.existing}, "
            f"{len(report.bad)} bad; {report.messages} messages planned"
        )
    if report.bad:
        sys.exit(1)


def _import(app: App, path: Path, dry_run: bool, show_bar: bool) -> ImportReport:
    size = path.stat().st_size
    with (
        click.progressbar(
            length=size,
            label="importing",
            file=sys.stderr,
            hidden=not (show_bar and size > 256 * 1024),
        ) as bar,
        _sessions_for_import(app, dry_run) as sessions,
    ):
        return import_csv(
            path,
            sessions,
            app.catalog,
            app.settings,
            app.clock.now(),
            app.actor,
            bar.update,
            dry_run=dry_run,
        )


@contextmanager
def _regular_file(file: Path) -> Iterator[Path]:
    """The CSV as a regular file. A pipe (``-``, /dev/stdin, a shell's ``<(...)``) is copied to
    a temporary file first: the file is read twice (the UTF-8 check, then the import), and a
    pipe only once."""
    if str(file) != "-" and (file.is_file() or not file.exists()):
        yield file  # a missing file is reported by the UTF-8 check, naming it
        return
    with tempfile.TemporaryDirectory(prefix="aftercare-import-") as folder:
        copy = Path(folder) / "import.csv"
        try:
            with (
                nullcontext(sys.stdin.buffer) if str(file) == "-" else file.open("rb") as source,
                copy.open("wb") as sink,
            ):
                shutil.copyfileobj(source, sink)
        except OSError as exc:
            raise AftercareError(f"file: cannot read {file} ({exc.strerror})") from None
        yield copy


@click.group("patients")
def patients_group() -> None:
    """Enrolled patients and their messages."""


def _check_utf8(path: Path) -> None:
    """Refuse a file that is not UTF-8 text, naming the line, before anything is written.

    The importer decodes as it streams and commits batch by batch, so a bad byte far into a big
    file would surface only after earlier batches were stored. This pass reads the file once more
    in chunks: memory stays flat and decoding is cheap next to enrolling.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    try:
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 16):
                held = len(decoder.getstate()[0])  # a character split across chunks
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    line += chunk.count(b"\n", 0, max(0, exc.start - held))
                    raise AftercareError(f"file: line {line} is not UTF-8 text") from None
                line += chunk.count(b"\n")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise AftercareError(f"file: line {line} is not UTF-8 text") from None
    except OSError as exc:
        raise AftercareError(f"file: cannot open {path} ({exc.strerror})") from None


@contextmanager
def _sessions_for_import(app: App, dry_run: bool) -> Iterator[sessionmaker[Session]]:
    """The app's database; for a dry run against a SQLite file that does not exist yet, a
    scratch copy instead, so that checking a file never creates (or migrates) a database."""
    database = app.engine.url.database
    if not (
        dry_run and app.engine.dialect.name == "sqlite" and database and not Path(database).exists()
    ):
        yield app.sessions
        return
    with tempfile.TemporaryDirectory(prefix="aftercare-dry-run-") as folder:
        scratch = App(
            app.settings.with_overrides(database_url=f"sqlite:///{folder}/dry-run.db"), app.clock
        )
        try:
            yield scratch.sessions
        finally:
            scratch.close()


@patients_group.command("list")
@click.option("--status", type=click.Choice([s.value for s in EnrollmentStatus]))
@click.option("--limit", type=click.IntRange(min=1), help="Newest N only.")
@json_option
@pass_app
def patients_list(app: App, status: str | None, limit: int | None, as_json: bool) -> None:
    """List enrollments, newest first."""
    with app.sessions() as session:
        chosen = EnrollmentStatus(status) if status else None
        rows = views.list_enrollments(session, chosen, limit)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, LIST_COLUMNS)


@patients_group.command("show")
@enrollment_argument
@json_option
@pass_app
def patients_show(
    app: App, enrollment_id: int | None, external_id: str | None, as_json: bool
) -> None:
    """One enrollment: the patient, every message and the history."""
    enrollment_id = resolve_enrollment(app, enrollment_id, external_id)
    with app.sessions() as session:
        data = views.show_enrollment(session, enrollment_id)
    if as_json:
        print_json(data)
        return
    # Staff typed the reason and the names: shown as text, never acted on by the terminal (an
    # escape sequence or a bidirectional override in them would be, printed raw).
    reason = views.printable(data["status_reason"] or "")
    click.echo(
        f"enrollment {data['id']}: {data['procedure']}, {data['status']}"
        + (f" ({reason})" if reason else "")
    )
    click.echo(
        views.printable(
            f"patient: {data['first_name']}, {data['phone']}, {data['email'] or 'no email'}, "
            f"{data['timezone']}, language {data['language']}, MRN {data['external_id'] or '-'}"
        )
    )
    click.echo(f"discharged: {data['discharged_at']}, channels: {','.join(data['channels'])}\n")
    _print_messages(data["messages"])
    _print_replies(data)
    click.echo("\nhistory:")
    print_table(
        data["history"],
        [
            ("at", "AT (UTC)"),
            ("kind", "EVENT"),
            ("actor", "BY"),
            ("reason", "REASON"),
            ("detail", "DETAIL"),
        ],
    )


def _print_replies(data: dict[str, Any]) -> None:
    scores = [f"{p['score']} ({p['received_at']})" for p in data["pain_scores"]]
    click.echo(f"\npain scores: {', '.join(scores) or 'none'}")
    click.echo("\nreplies:")
    rows = [
        r | {"body": views.printable(r["body"]), "handled": r["handled_at"]}
        for r in data["replies"]
    ]
    print_table(
        rows,
        [
            ("id", "ID"),
            ("received_at", "RECEIVED (UTC)"),
            ("kind", "KIND"),
            ("urgent_reason", "URGENT"),
            ("handled", "HANDLED"),
            ("body", "MESSAGE"),
        ],
    )


@click.command("cancel")
@enrollment_argument
@click.option("--reason", help="Why, for the audit trail (required).")
@pass_app
def cancel(
    app: App, enrollment_id: int | None, external_id: str | None, reason: str | None
) -> None:
    """Cancel every message not yet sent."""
    if reason is None:  # checked here, not by click: one line, like every other input error
        raise InputError("--reason", "is required (why, for the audit trail)")
    why = reason_flag(reason) or ""
    enrollment_id = resolve_enrollment(app, enrollment_id, external_id)
    with transaction(app.sessions) as session:
        count = lifecycle.cancel(session, enrollment_id, why, app.actor, app.clock.now())
    click.echo(f"cancelled enrollment {enrollment_id}: {count} message(s) will not be sent")


@click.command("pause")
@enrollment_argument
@click.option("--reason", help="Why, for the audit trail.")
@pass_app
def pause(app: App, enrollment_id: int | None, external_id: str | None, reason: str | None) -> None:
    """Hold every unsent message until 'resume'."""
    enrollment_id = resolve_enrollment(app, enrollment_id, external_id)
    with transaction(app.sessions) as session:
        count = lifecycle.pause(
            session, enrollment_id, reason_flag(reason), app.actor, app.clock.now()
        )
    click.echo(f"paused enrollment {enrollment_id}: {count} message(s) held")


@click.command("resume")
@enrollment_argument
@click.option("--reason", help="Why, for the audit trail.")
@pass_app
def resume(
    app: App, enrollment_id: int | None, external_id: str | None, reason: str | None
) -> None:
    """Release held messages (those whose time has passed expire instead of going out late)."""
    enrollment_id = resolve_enrollment(app, enrollment_id, external_id)
    with transaction(app.sessions) as session:
        count = lifecycle.resume(
            session, enrollment_id, reason_flag(reason), app.actor, app.clock.now()
        )
    click.echo(f"resumed enrollment {enrollment_id}: {count} message(s) pending again")


@click.command("reschedule")
@enrollment_argument
@click.option("--discharged-at", required=True, metavar="ISO", help="The corrected discharge time.")
@click.option("--reason", help="Why, for the audit trail.")
@pass_app
def reschedule(
    app: App,
    enrollment_id: int | None,
    external_id: str | None,
    discharged_at: str,
    reason: str | None,
) -> None:
    """Re-plan unsent messages from a corrected discharge time; sent history stays."""
    enrollment_id = resolve_enrollment(app, enrollment_id, external_id)
    now = app.clock.now()
    when = parse_flag("--discharged-at", parse_instant, discharged_at)
    parse_flag("--discharged-at", lambda v: check_discharge_time(v, now), when)
    why = reason_flag(reason)
    try:
        with transaction(app.sessions) as session:
            counts = lifecycle.reschedule(
                session, enrollment_id, when, app.catalog, app.settings, app.actor, now, why
            )
    except InputError as exc:
        raise InputError(FLAGS.get(exc.field, exc.field), exc.problem) from None
    click.echo(
        f"rescheduled enrollment {enrollment_id}: "
        + ", ".join(f"{v} {k}" for k, v in counts.items())
    )


def reason_flag(reason: str | None) -> str | None:
    return None if reason is None else parse_flag("--reason", parse_reason, reason)
