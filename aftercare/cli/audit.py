"""``aftercare audit``: export the event log (who did what, when and why) for a time range.

Events are read in batches of :data:`BATCH`, each in its own short transaction, ordered by
(time, id) and continued after the last row seen (keyset paging): memory stays flat for millions
of rows, and no long transaction holds the database while a slow pipe drains.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from typing import Any

import click
from sqlalchemy.orm import Session, sessionmaker

from aftercare.app import App
from aftercare.cli.group import json_option, pass_app
from aftercare.cli.ids import record_id, resolve_enrollment
from aftercare.cli.views import iso, printable
from aftercare.errors import InputError
from aftercare.schedules.timeexpr import parse_duration
from aftercare.store import events as store_events
from aftercare.validation import parse_instant

BATCH = 1000
FIELDS = ("id", "at", "kind", "actor", "enrollment_id", "message_id", "reason", "detail")
# The table is printed as it streams, so its columns have fixed widths (longer values push on).
WIDTHS = {"id": 8, "at": 20, "kind": 18, "actor": 18, "enrollment_id": 10, "message_id": 8}
HEADINGS = {"enrollment_id": "ENROLLMENT", "message_id": "MESSAGE", "at": "AT (UTC)", "actor": "BY"}


@click.command("audit")
@click.option(
    "--since",
    required=True,
    metavar="WHEN",
    help="From: an ISO 8601 time with offset, a date (UTC), or a span back from now (7d, 12h).",
)
@click.option("--until", metavar="WHEN", help="Up to (not including); same forms. Default: no end.")
@click.option(
    "--enrollment",
    "enrollment_id",
    callback=record_id("enrollment", "--enrollment"),
    metavar="ID",
    help="One enrollment only.",
)
@click.option("--external-id", metavar="MRN", help="The enrollment of the patient with this MRN.")
@json_option
@pass_app
def audit(
    app: App,
    since: str,
    until: str | None,
    enrollment_id: int | None,
    external_id: str | None,
    as_json: bool,
) -> None:
    """Export the events of a time range, oldest first."""
    if external_id is not None:
        enrollment_id = resolve_enrollment(app, enrollment_id, external_id)
    now = app.clock.now()
    start = parse_when("--since", since, now)
    end = parse_when("--until", until, now) if until else None
    if end is not None and end <= start:
        raise InputError("--until", "must be later than --since")
    rows = events(app.sessions, start, end, enrollment_id)
    if as_json:
        _print_json(rows)
    else:
        _print_table(rows)


def parse_when(flag: str, raw: str, now: datetime) -> datetime:
    text = raw.strip()
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        except ValueError:
            raise InputError(flag, f"{raw!r} is not a date") from None
    try:
        return parse_instant(text)
    except ValueError:
        raise InputError(
            flag,
            f"{raw!r} is neither a time (2026-11-23T14:30-05:00, 2026-11-23) nor a span (7d, 12h)",
        ) from None


def events(
    sessions: sessionmaker[Session],
    since: datetime,
    until: datetime | None = None,
    enrollment_id: int | None = None,
    batch: int = BATCH,
) -> Iterator[dict[str, Any]]:
    """The events at or after ``since`` (and before ``until``), oldest first, as printed."""
    for row in store_events.between(sessions, since, until, enrollment_id, batch):
        yield {name: getattr(row, name) for name in FIELDS} | {"at": iso(row.at)}


def _print_json(rows: Iterator[dict[str, Any]]) -> None:
    """A JSON list, one event per line, written as the rows arrive."""
    opened = False
    for row in rows:
        click.echo(
            ("[\n  " if not opened else ",\n  ") + json.dumps(row, ensure_ascii=False), nl=False
        )
        opened = True
    click.echo("\n]" if opened else "[]")


def _print_table(rows: Iterator[dict[str, Any]]) -> None:
    headings = [HEADINGS.get(name, name.upper()) for name in FIELDS]
    click.echo(_line(headings))
    count = 0
    for row in rows:
        click.echo(_line([_text(row[name]) for name in FIELDS]))
        count += 1
    click.echo(f"{count} event(s)")


def _line(values: list[str]) -> str:
    cells = [v.ljust(WIDTHS.get(name, 0)) for name, v in zip(FIELDS, values, strict=True)]
    return "  ".join(cells).rstrip()


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        value = " ".join(f"{k}:{v}" for k, v in value.items())
    return printable(" ".join(str(value).split()))
