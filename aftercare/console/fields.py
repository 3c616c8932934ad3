"""Reading what staff typed into the console's small forms, with the CLI's rules and words."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from aftercare.errors import InputError
from aftercare.planner import zone

NOTE_MAX = 500


def note_from(form: Mapping[str, str], name: str = "note", required: bool = False) -> str | None:
    """A note or reason: whitespace folded, at most 500 characters (as ``--reason``)."""
    cleaned = " ".join((form.get(name) or "").split())
    if not cleaned:
        if required:
            raise InputError(name, "is required")
        return None
    if len(cleaned) > NOTE_MAX:
        raise InputError(name, f"is longer than {NOTE_MAX} characters")
    return cleaned


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
