"""Calendar attachments (RFC 5545): a patient's milestones as all-day events.

Pure: the caller chooses the words (in the patient's language), the days and the DTSTAMP, so the
same input always gives the same bytes. Each event's UID is made from ``scope`` and the
milestone's key; build every calendar for one enrollment with the same scope (the enrollment id)
and a later calendar updates the events of an earlier one instead of adding copies.

Example::

    calendar(
        [Milestone("bandage-off", date(2026, 11, 25), "Bandage may come off"),
         Milestone("lifting", date(2027, 1, 3), "Last day of no heavy lifting")],
        scope=enrollment_id, domain="clinic.example.org", stamp=now, language="en",
    )
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from aftercare.channels.base import Attachment

PRODID = "-//aftercare//aftercare reminders//EN"
CONTENT_TYPE = "text/calendar; charset=utf-8; method=PUBLISH"
LINE_OCTETS = 75  # RFC 5545 3.1: content lines are folded at 75 octets, not counting CRLF

_TOKEN = re.compile(r"[A-Za-z0-9._-]+")
_LANGUAGE = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass(frozen=True)
class Milestone:
    key: str  # stable across calendars for one enrollment, e.g. "bandage-off"
    day: date
    summary: str
    description: str = ""


def calendar(
    milestones: Iterable[Milestone],
    *,
    scope: str | int,
    domain: str,
    stamp: datetime,
    language: str | None = None,
    name: str | None = None,
) -> bytes:
    """A VCALENDAR (METHOD:PUBLISH) with one all-day VEVENT per milestone, UTF-8 with CRLFs.

    ``stamp`` (aware) becomes every event's DTSTAMP; ``language`` tags the texts; ``name`` is
    shown by some clients as the calendar's name. Raises ValueError on an empty list, a repeated
    key, or a key, scope, domain or language that cannot be written safely.
    """
    events = list(milestones)
    _check(events, str(scope), domain, stamp, language)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", f"PRODID:{PRODID}", "CALSCALE:GREGORIAN"]
    lines.append("METHOD:PUBLISH")
    if name:
        lines.append(f"X-WR-CALNAME:{escape_text(name)}")
    dtstamp = stamp.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    tag = f";LANGUAGE={language}" if language else ""
    for event in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:aftercare-{scope}-{event.key}@{domain}",
            f"DTSTAMP:{dtstamp}",
            f"DTSTART;VALUE=DATE:{event.day:%Y%m%d}",
            f"DTEND;VALUE=DATE:{event.day + timedelta(days=1):%Y%m%d}",  # exclusive: one day
            f"SUMMARY{tag}:{escape_text(event.summary)}",
        ]
        if event.description:
            lines.append(f"DESCRIPTION{tag}:{escape_text(event.description)}")
        lines += ["TRANSP:TRANSPARENT", "END:VEVENT"]  # a reminder, not a busy day
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines).encode()


def attachment(data: bytes, filename: str = "aftercare.ics") -> Attachment:
    return Attachment(filename=filename, content_type=CONTENT_TYPE, data=data)


def escape_text(value: str) -> str:
    """A TEXT value (RFC 5545 3.3.11): backslash, semicolon, comma and newlines escaped; other
    control characters, which TEXT may not hold, dropped."""
    value = _CONTROLS.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
    for char in ("\\", ";", ","):
        value = value.replace(char, "\\" + char)
    return value.replace("\n", "\\n")


def fold(line: str) -> str:
    """Split a content line into physical lines of at most 75 octets, never inside a UTF-8
    character; each continuation starts with one space."""
    physical: list[str] = []
    current, octets = "", 0
    for char in line:
        width = len(char.encode())
        if octets + width > LINE_OCTETS:
            physical.append(current)
            current, octets = " ", 1
        current += char
        octets += width
    physical.append(current)
    return "\r\n".join(physical)


def _check(
    events: list[Milestone], scope: str, domain: str, stamp: datetime, language: str | None
) -> None:
    if not events:
        raise ValueError("a calendar needs at least one milestone")
    keys = [event.key for event in events]
    if len(set(keys)) != len(keys):
        raise ValueError("milestone keys must be unique (they make the UIDs)")
    for what, value in [("scope", scope), ("domain", domain)] + [("key", k) for k in keys]:
        if not _TOKEN.fullmatch(value):
            raise ValueError(f"{what} {value!r} may only hold letters, digits, '.', '_' and '-'")
    if language is not None and not _LANGUAGE.fullmatch(language):
        raise ValueError(f"{language!r} is not a language tag")
    if stamp.tzinfo is None:
        raise ValueError("stamp must be an aware datetime")
