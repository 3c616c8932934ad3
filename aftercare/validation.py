"""Parsing of the values staff type or import: each returns the normal form or raises ValueError.

The message of the ValueError says what is wrong with the value; callers add the field name.
Messages never repeat the value itself when it is patient data (phone, email, name).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers

# Discharge times further than this from now are almost certainly typos (a wrong year).
MAX_DISCHARGE_PAST = timedelta(days=90)
MAX_DISCHARGE_FUTURE = timedelta(days=30)

# Deliberately simple: one @, a dot in the domain, no spaces. Deliverability is the SMTP
# server's job; this only catches typos such as a missing @ or a comma for a dot.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# What a name or an MRN never holds: C0 and C1 control characters (a NUL, an escape sequence
# for the terminal that prints ``patients list``), markup and template braces, and invisible
# characters that change how the text around them is shown: bidirectional embeddings, overrides
# and isolates (U+202E shows "Ana\u202eliam" as "Anamail"), line and paragraph separators, the
# byte-order mark, and lone surrogates (a non-UTF-8 byte in a terminal argument arrives as one,
# and the database driver cannot encode it). Arabic, Hebrew and emoji need none of these; the
# zero-width joiner and non-joiner (emoji sequences, Persian names) stay allowed.
_NAME_FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f<>{}\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
    "\u2028\u2029\ufeff\ud800-\udfff\ufffe\uffff]"
)
# Names the zone database accepts that are not places. "EST" is a fixed UTC-5 with no DST (a
# patient in New York would get every summer message an hour off) and "EST5EDT" a POSIX rule;
# "localtime" is whatever zone the server runs in, "Factory" a placeholder. Staff typing these
# mean a place, and must name it.
_NOT_PLACES = frozenset(
    name.casefold()
    for name in (
        *("EST", "CST", "MST", "PST", "HST", "AKST", "EDT", "CDT", "MDT", "PDT", "AKDT", "HDT"),
        *("EST5EDT", "CST6CDT", "MST7MDT", "PST8PDT", "CET", "EET", "MET", "WET"),
        *("localtime", "Factory", "posixrules"),
    )
)


def parse_phone(raw: str, default_region: str = "US") -> str:
    """A mobile or fixed number in E.164 (``+15555550123``)."""
    try:
        number = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number (use E.164, e.g. +15555550123)") from None
    # is_valid_number implies is_possible_number, so the cheaper check would only repeat it.
    if not phonenumbers.is_valid_number(number):
        raise ValueError("is not a valid phone number (use E.164, e.g. +15555550123)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_email(raw: str) -> str:
    value = raw.strip()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("is not an email address")
    return value


def parse_first_name(raw: str) -> str:
    value = " ".join(raw.split())
    if not value:
        raise ValueError("is empty")
    if len(value) > 60:
        raise ValueError("is longer than 60 characters")
    if _NAME_FORBIDDEN.search(value):
        raise ValueError("contains control characters or markup")
    if value[0] in "=+-@":
        # A spreadsheet would run it as a formula when the name is exported again.
        raise ValueError("starts with =, +, - or @ (looks like a spreadsheet formula)")
    return value


def parse_timezone(raw: str) -> str:
    """An IANA zone name such as ``America/Chicago``; abbreviations like EST are refused."""
    name = raw.strip()
    if not name or name.casefold() in _NOT_PLACES:
        raise ValueError(f"{raw!r} is not an IANA time zone (e.g. America/New_York)")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{raw!r} is not an IANA time zone (e.g. America/New_York)") from None
    if name not in _zones():
        raise ValueError(f"{raw!r} is not an IANA time zone (e.g. America/New_York)")
    return name


def parse_instant(raw: str) -> datetime:
    """An ISO 8601 time *with* an offset, returned in UTC. A bare local time is ambiguous."""
    text = raw.strip()
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{raw!r} is not an ISO 8601 time (e.g. 2026-11-23T14:30-05:00)") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{raw!r} has no UTC offset (e.g. 2026-11-23T14:30-05:00)")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+14:00 is before the first instant datetime holds
        raise ValueError(f"{raw!r} is out of range") from None


def check_discharge_time(value: datetime, now: datetime) -> datetime:
    if value < now - MAX_DISCHARGE_PAST:
        raise ValueError(f"is more than {MAX_DISCHARGE_PAST.days} days in the past")
    if value > now + MAX_DISCHARGE_FUTURE:
        raise ValueError(f"is more than {MAX_DISCHARGE_FUTURE.days} days in the future")
    return value


def parse_channels(raw: str, allowed: tuple[str, ...] = ("sms", "email")) -> tuple[str, ...]:
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    if not names:
        raise ValueError(f"is empty; choose from {', '.join(allowed)}")
    for name in names:
        if name not in allowed:
            raise ValueError(f"unknown channel {name!r}; choose from {', '.join(allowed)}")
    return tuple(dict.fromkeys(names))


def parse_external_id(raw: str) -> str:
    value = raw.strip()
    if len(value) > 64:
        raise ValueError("is longer than 64 characters")
    if _NAME_FORBIDDEN.search(value):
        raise ValueError("contains control characters or markup")
    return value


_zone_cache: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _zone_cache
    if _zone_cache is None:
        _zone_cache = frozenset(available_timezones())
    return _zone_cache
