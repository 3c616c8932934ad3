"""Times as staff read them: in the patient's own zone with its name, and relative to now."""

from __future__ import annotations

from datetime import datetime

from aftercare.planner import zone


def patient_local(at: datetime | None, tz: str | None) -> str:
    """``Mon Nov 23, 10:30 CST``; the zone's abbreviation says whose clock it is."""
    if at is None:
        return "–"
    local = at.astimezone(zone(tz or "UTC"))
    return local.strftime("%a %b %-d, %H:%M %Z")


_UNITS = ((86_400, "d"), (3_600, "h"), (60, "min"))


def relative(at: datetime | None, now: datetime) -> str:
    """``2 h ago``, ``in 3 d``, ``just now``: the rough distance a glance needs."""
    if at is None:
        return ""
    seconds = (at - now).total_seconds()
    ahead, seconds = seconds > 0, abs(seconds)
    if seconds < 60:
        return "just now"
    size, unit = next((s, u) for s, u in _UNITS if seconds >= s)
    amount = f"{int(seconds // size)} {unit}"
    return f"in {amount}" if ahead else f"{amount} ago"


def day_number(discharged_at: datetime, tz: str, now: datetime) -> int:
    """Day N of the timeline as the patient counts it: discharge day is day 0."""
    patient_zone = zone(tz)
    return (
        now.astimezone(patient_zone).date() - discharged_at.astimezone(patient_zone).date()
    ).days
