"""Planning: a timeline plus one recipient's zone, procedure and discharge times -> the messages.

Pure functions of their inputs; no clock, no database. "day N HH:MM" is built as a wall time in the
patient's zone and converted to UTC: a wall time that does not exist (the spring-forward gap) moves
forward by the gap, an ambiguous one (the autumn repeat) takes the first occurrence (fold=0).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from operator import itemgetter
from zoneinfo import ZoneInfo

from aftercare.config import QuietHours
from aftercare.schedules.model import Repeat, Step, Timeline
from aftercare.schedules.timeexpr import DISCHARGE, FOLLOW_UP, PROCEDURE, After, OnDay, When
from aftercare.statuses import Audience

# A repeat that never reaches its end would plan forever; no aftercare timeline needs more.
MAX_OCCURRENCES = 200


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    step: str
    occurrence: int
    channel: str
    due_at: datetime
    expires_at: datetime
    # The due time as planned before quiet hours moved it (equal to due_at when not moved).
    planned_at: datetime

    @property
    def deferred(self) -> bool:
        return self.due_at != self.planned_at


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def plan(
    timeline: Timeline,
    tz: str,
    discharged_at: datetime | None,
    channels: tuple[str, ...],
    quiet: QuietHours | None,
    *,
    procedure_at: datetime | None = None,
    follow_up_at: datetime | None = None,
    audience: Audience = Audience.PATIENT,
) -> list[PlannedMessage]:
    """Every message of ``timeline`` for one recipient, in due order (timeline order on ties).

    ``channels`` are the recipient's channels; a step goes out on the ones it shares with them,
    and only to the audiences it names (``patient``, ``caregiver``). Steps counted from the
    procedure are planned when its time is known, steps counted from discharge when that is: a
    patient enrolled when the procedure is booked gets the steps before it, and the rest once the
    discharge is recorded; steps counted from the follow-up visit when staff booked one. A step
    before the procedure (or the visit) is never sent after it has begun.
    """
    patient_zone = zone(tz)
    anchors = {
        DISCHARGE: discharged_at.astimezone(UTC) if discharged_at else None,
        PROCEDURE: procedure_at.astimezone(UTC) if procedure_at else None,
        FOLLOW_UP: follow_up_at.astimezone(UTC) if follow_up_at else None,
    }
    planned: list[tuple[datetime, int, PlannedMessage]] = []
    for order, step in enumerate(timeline.steps):
        wanted = [c for c in step.channels if c in channels]
        anchor = anchors[step.at.anchor]
        if not wanted or anchor is None or audience not in step.audience:
            continue
        if _calendar_only(step):
            local_day = anchor.astimezone(patient_zone).date()
            times = _calendar_times(step.at, step.repeat, tz, local_day, quiet)
        else:
            times = tuple(
                _with_deferral(occurrences(step, patient_zone, anchor), patient_zone, quiet)
            )
        for occurrence, (due, at) in enumerate(times):
            expires = due + step.expires
            if step.at.anchor != DISCHARGE and at < anchor:
                expires = min(expires, anchor)
            for channel in wanted:
                message = PlannedMessage(step.id, occurrence, channel, due, expires, at)
                planned.append((due, order, message))
    planned.sort(key=itemgetter(0, 1))
    return [message for _, _, message in planned]


def _calendar_only(step: Step) -> bool:
    """Whether a step's times depend on the discharge *day* alone (not the time of day)."""
    return isinstance(step.at, OnDay) and (
        step.repeat is None or isinstance(step.repeat.until, OnDay)
    )


@lru_cache(maxsize=8192)
def _calendar_times(
    at: When, repeat: Repeat | None, tz: str, local_day: date, quiet: QuietHours | None
) -> tuple[tuple[datetime, datetime], ...]:
    """(due, planned) of a calendar step for everyone discharged on ``local_day`` in ``tz``.

    A day's discharges share these, so an import of thousands of patients computes each zone's
    wall-clock conversions once per day instead of once per patient.
    """
    patient_zone = zone(tz)
    # Any instant of that local day will do: only its date is used for calendar steps.
    noon = local_to_utc(local_day, time(12, 0), patient_zone)
    step = Step(
        id="",
        at=at,
        expires=timedelta(0),
        channels=(),
        sms={},
        email_subject={},
        email_body={},
        repeat=repeat,
    )
    return tuple(_with_deferral(occurrences(step, patient_zone, noon), patient_zone, quiet))


def _with_deferral(
    instants: Iterator[datetime], tz: tzinfo, quiet: QuietHours | None
) -> Iterator[tuple[datetime, datetime]]:
    for at in instants:
        yield defer_for_quiet_hours(at, tz, quiet), at


def occurrences(step: Step, tz: tzinfo, anchor: datetime) -> Iterator[datetime]:
    """The UTC instants a step falls on, first to last (repeats included); ``anchor`` is the
    discharge or the procedure, whichever the step counts from."""
    first = resolve(step.at, tz, anchor)
    yield first
    if step.repeat is None:
        return
    until = resolve(step.repeat.until, tz, anchor, end_of_day=True)
    for k in range(1, MAX_OCCURRENCES):
        if isinstance(step.at, OnDay):
            days = step.repeat.every.days * k
            at = resolve(OnDay(step.at.day + days, step.at.at, step.at.anchor), tz, anchor)
        else:
            at = first + step.repeat.every * k
        if at > until:
            return
        yield at


def resolve(when: When, tz: tzinfo, anchor: datetime, end_of_day: bool = False) -> datetime:
    if isinstance(when, After):
        return anchor + when.offset
    day = anchor.astimezone(tz).date() + timedelta(days=when.day)
    if end_of_day:
        return local_to_utc(day + timedelta(days=1), time(0, 0), tz) - timedelta(microseconds=1)
    return local_to_utc(day, when.at, tz)


def local_to_utc(day: date, wall: time, tz: tzinfo) -> datetime:
    """The instant a wall clock in ``tz`` shows ``wall`` on ``day``; see the module docstring."""
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def defer_for_quiet_hours(at: datetime, tz: tzinfo, quiet: QuietHours | None) -> datetime:
    """``at`` itself, or the end of the quiet window it falls in (patient-local)."""
    if quiet is None:
        return at
    local = at.astimezone(tz)
    wall = local.time().replace(tzinfo=None)
    if quiet.start < quiet.end:
        inside, next_day = quiet.start <= wall < quiet.end, False
    else:
        inside, next_day = wall >= quiet.start or wall < quiet.end, wall >= quiet.start
    if not inside:
        return at
    day = local.date() + timedelta(days=1 if next_day else 0)
    end = local_to_utc(day, quiet.end, tz)
    if end <= at:
        # ``at`` is in the hour repeated at fall-back, after the first time the clocks showed
        # the end of the window: the window ends when they show it the second time.
        end = datetime.combine(day, quiet.end, tzinfo=tz).replace(fold=1).astimezone(UTC)
    return end


def in_quiet_hours(at: datetime, tz: tzinfo, quiet: QuietHours | None) -> bool:
    return defer_for_quiet_hours(at, tz, quiet) != at
