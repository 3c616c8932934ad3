"""The time expressions of timeline files: durations (``90m``), offsets (``+2h``) and
calendar times (``day 2 09:00``), after discharge; and the same before (or after) the procedure
(``procedure -2h``, ``procedure -1d 18:00``), for the steps that prepare a patient for it, and
around the follow-up visit (``follow-up -1d 10:00``)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time, timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
# ASCII only: \d would also take other scripts' digits ("day ٣" read as day 3).
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$", re.ASCII)
_DAY_TIME = re.compile(r"^day\s+(\d+)(?:\s+(\d{1,2}):(\d{2}))?$", re.ASCII)
DISCHARGE = "discharge"
PROCEDURE = "procedure"
FOLLOW_UP = "follow-up"  # the follow-up visit staff booked (--follow-up-at)
_ANCHORS = (PROCEDURE, FOLLOW_UP)
_ANCHOR_DAY = re.compile(r"^(\S+)\s+([+-])(\d+)d\s+(\d{1,2}):(\d{2})$", re.ASCII)
_ANCHOR_OFFSET = re.compile(r"^(\S+)\s+([+-])\s*(\S+)$", re.ASCII)
# No aftercare timeline spans years; the cap keeps a typo (``day 20260``) from overflowing the
# calendar when it is planned.
MAX_DAYS = 3660


@dataclass(frozen=True)
class After:
    """A fixed span after the discharge instant (``+2h``): the same instant in every zone. With
    the procedure as anchor the span may be negative (``procedure -2h``)."""

    offset: timedelta
    anchor: str = DISCHARGE

    def __str__(self) -> str:
        if self.anchor != DISCHARGE:
            sign = "-" if self.offset < timedelta(0) else "+"
            return f"{self.anchor} {sign}{format_duration(abs(self.offset))}"
        return f"+{format_duration(self.offset)}"


@dataclass(frozen=True)
class OnDay:
    """Wall-clock time on calendar day ``day`` after discharge (discharge day is day 0), or
    relative to the procedure's day (``day`` -1 is the day before it)."""

    day: int
    at: time
    anchor: str = DISCHARGE

    def __str__(self) -> str:
        if self.anchor != DISCHARGE:
            sign = "-" if self.day < 0 else "+"
            return f"{self.anchor} {sign}{abs(self.day)}d {self.at:%H:%M}"
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
    """``+90m`` / ``+2h`` / ``+1d`` (relative) or ``day N HH:MM`` (patient-local calendar), after
    discharge; ``procedure -2h`` or ``procedure -1d 18:00`` around the procedure, and the same
    around the follow-up visit (``follow-up -1d 10:00``)."""
    text = " ".join(str(raw).split())
    if text.split(" ")[0] in _ANCHORS:
        return _parse_anchored(text)
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


def _parse_anchored(text: str) -> When:
    anchor = text.split(" ")[0]
    expected = f"{text!r} is not a time (expected e.g. '{anchor} -2h' or '{anchor} -1d 18:00')"
    match = _ANCHOR_DAY.match(text)
    if match:
        _, sign, days, hours, minutes = match.groups()
        if int(days) > MAX_DAYS:
            raise ValueError(f"{text!r} is more than {MAX_DAYS} days from the {anchor}")
        if int(hours) >= 24 or int(minutes) >= 60:
            raise ValueError(expected)
        day = -int(days) if sign == "-" else int(days)
        return OnDay(day, time(int(hours), int(minutes)), anchor)
    match = _ANCHOR_OFFSET.match(text)
    if not match:
        raise ValueError(expected)
    try:
        span = parse_duration(match.group(3))
    except ValueError:
        raise ValueError(expected) from None
    return After(-span if match.group(2) == "-" else span, anchor)


def format_duration(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
