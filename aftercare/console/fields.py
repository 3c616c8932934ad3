"""Reading what staff typed into the console's small forms, with the CLI's rules and words."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from aftercare.errors import InputError
from aftercare.planner import zone
from aftercare.validation import parse_reason


def note_from(form: Mapping[str, str], name: str = "note", required: bool = False) -> str | None:
    """A note or reason, checked as ``--reason`` is; an empty optional one is None."""
    raw = form.get(name) or ""
    if not raw.strip() and not required:
        return None
    try:
        return parse_reason(raw)
    except ValueError as exc:
        raise InputError(name, str(exc)) from None


def local_instant(raw: str, tz: str) -> str:
    """A browser's ``datetime-local`` value (no offset) as an ISO time in the patient's zone,
    for the CLI's parser; a value that has an offset, or is not a time, passes through as is
    (the parser then names the problem)."""
    text = raw.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    if parsed.tzinfo is not None:
        return text
    try:
        return parsed.replace(tzinfo=zone(tz)).isoformat()
    except (KeyError, ValueError):  # an unknown zone: the zone field reports it
        return text
