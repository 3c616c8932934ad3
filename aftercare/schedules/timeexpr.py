"""The time expressions of timeline files: durations (``90m``), offsets (``+2h``) and
calendar times (``day 2 09:00``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# ASCII only: \d would also take other scripts' digits ("day ٣" read as day 3).
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$", re.ASCII)
_DAY_TIME = re.compile(r"^day\s+(\d+)(?:\s+(\d{1,2}):(\d{2}))?$", re.ASCII)
# No aftercare timeline spans years; the cap keeps a typo (``day 20260``) from overflowing the
# calendar when it is planned.
MAX_DAYS = 3660


@dataclass(frozen=True)
class After:
    """A fixed span after the discharge instant (``+2h``): the same instant in every zone."""

    offset: timedelta

    def __str__(self) -> str:
        return f"+{format_duration(self.offset)}"


@dataclass(frozen=True)
class OnDay:
    """Wall-clock time on calendar day ``day`` after discharge (discharge day is day 0)."""

    day: int
    at: time

    def __str__(self) -> str:
        return f"day {self.day} {self.at:%H:%M}"


When = After | OnDay


def parse_duration(raw: object) -> timedelta:
    """``30s``, ``90m``, ``12h``, ``7d``, ``6w``; raises ValueError saying what is expected."""
    text = str(raw).strip()
    match = _DURATION.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration (expected e.g. 30s, 90m, 12h, 7d, 6w)")
    try:
        span = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError:
        span = timedelta.max
    if span > timedelta(days=MAX_DAYS):
        raise ValueError(f"{text!r} is not a duration of at most {MAX_DAYS} days")
    return span


def parse_when(raw: object) -> When:
    """``+90m`` / ``+2h`` / ``+1d`` (relative) or ``day N HH:MM`` (patient-local calendar)."""
    text = " ".join(str(raw).split())
    if text.startswith("+"):
        try:
            return After(parse_duration(text[1:]))
        except ValueError:
            pass
    match = _DAY_TIME.match(text)
    if match:
        day, hours, minutes = match.groups()
        if int(day) > MAX_DAYS:
            raise ValueError(f"{text!r} is later than day {MAX_DAYS}")
        if hours is None:
            return OnDay(int(day), time(0, 0))
        if int(hours) < 24 and int(minutes) < 60:
            return OnDay(int(day), time(int(hours), int(minutes)))
    raise ValueError(f"{text!r} is not a time (expected e.g. +2h, +90m or 'day 2 09:00')")


def format_duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
