"""The per-number SMS cap: at most N texts a patient-local day and M in any 7 local days.

The TCPA health-care exemption (47 CFR 64.1200(a)(9)(iv)) allows one text a day and three a week
per patient, across everything we send them. The lint keeps each timeline within that on its
own; two enrollments (kyphoplasty, then vertebroplasty a week later) can still add up to more, so
the dispatcher asks this module, at claim time, when the next text to a number may go out.

Days are the patient's calendar days, like the lint's: a weekly text at 10:00 is "once a week" to
the patient even when a DST change makes it 6 days 23 hours after the last one. Pure functions:
the texts already sent and a ``now`` in, an instant out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from aftercare.config import QuietHours
from aftercare.planner import defer_for_quiet_hours, local_to_utc

WEEK_DAYS = 7


@dataclass(frozen=True)
class SmsCaps:
    per_day: int  # 0: no daily cap
    per_week: int  # 0: no weekly cap
    quiet: QuietHours | None  # a text moved to another day still keeps out of quiet hours

    @property
    def on(self) -> bool:
        return bool(self.per_day or self.per_week)


@dataclass(frozen=True)
class Verdict:
    at: datetime  # ``now`` when a text may go now, else the first allowed instant
    rule: str | None  # the cap that held it back, in words; None when it may go now


def next_allowed(sent: Iterable[datetime], now: datetime, tz: tzinfo, caps: SmsCaps) -> Verdict:
    """When one more text to a number that was sent texts at ``sent`` may go: now, or the start
    of the first later local day the caps allow (moved out of quiet hours)."""
    days = Counter(at.astimezone(tz).date() for at in sent)
    today = now.astimezone(tz).date()
    rule = _broken(days, today, caps)
    if rule is None:
        return Verdict(now, None)
    day = today + timedelta(days=1)
    # Only past texts are counted, so at most a week on every day is allowed again.
    while _broken(days, day, caps) is not None:
        day += timedelta(days=1)
    start = local_to_utc(day, time(0, 0), tz)
    return Verdict(defer_for_quiet_hours(start, tz, caps.quiet), rule)


def _broken(days: Counter[date], day: date, caps: SmsCaps) -> str | None:
    """The cap one more text on ``day`` would break, in words (None: it breaks none)."""
    if caps.per_day and days[day] >= caps.per_day:
        return f"at most {caps.per_day} SMS a day per number"
    week = sum(days[day - timedelta(days=back)] for back in range(WEEK_DAYS))
    if caps.per_week and week >= caps.per_week:
        return f"at most {caps.per_week} SMS in 7 days per number"
    return None
