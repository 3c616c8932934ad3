"""Silence is a signal: a check-in that expects an answer (``expects: pain-score``) and gets
none within its grace (``answer_within``) puts the patient on the worklist, once per text.

A daemon pass, like escalation: the alert's unique cause ("no-answer:<message id>") lets any
number of daemons look at once and open one alert.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from aftercare.clock import Clock
from aftercare.db import transaction
from aftercare.schedules.load import Catalog
from aftercare.schedules.timeexpr import format_duration
from aftercare.store import alerts


def notice_silence(
    sessions: sessionmaker[Session], catalog: Catalog, clock: Clock, worker: str
) -> int:
    """Open a "no answer" alert for each check-in left unanswered past its grace; how many."""
    opened = 0
    for name in catalog.names():
        timeline = catalog.get(name)
        for step in timeline.steps:
            if step.expects is None or step.answer_within is None:
                continue
            what = step.expects.replace("-", " ")
            reason = f"no {what} within {format_duration(step.answer_within)}"
            with transaction(sessions) as session:
                opened += alerts.open_no_answers(
                    session,
                    timeline.name,
                    step.id,
                    step.answer_within,
                    reason,
                    worker,
                    clock.now(),
                )
    return opened
