"""The timeline versions enrollments were planned with: stored once per distinct text."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aftercare.models import TimelineVersion
from aftercare.schedules.model import Timeline


def version_ids(
    session: Session, timelines: Iterable[Timeline], now: datetime
) -> dict[Timeline, int]:
    """The id of each timeline's stored version, storing the ones not seen before."""
    wanted = {(t.name, t.version, t.digest): t for t in timelines}
    if not wanted:
        return {}
    query = select(
        TimelineVersion.id, TimelineVersion.name, TimelineVersion.version, TimelineVersion.digest
    ).where(
        tuple_(TimelineVersion.name, TimelineVersion.version, TimelineVersion.digest).in_(wanted)
    )
    found = {(name, version, digest): i for i, name, version, digest in session.execute(query)}
    for key, timeline in wanted.items():
        if key not in found:
            found[key] = _store(session, timeline, now)
    return {timeline: found[key] for key, timeline in wanted.items()}


def _store(session: Session, timeline: Timeline, now: datetime) -> int:
    row = TimelineVersion(
        name=timeline.name,
        version=timeline.version,
        digest=timeline.digest,
        main_file=Path(timeline.source).name,
        files=dict(timeline.files),
        created_at=now,
    )
    try:
        # A savepoint: another enrollment storing the same version at once wins the unique key,
        # and this one takes its row instead of failing.
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        stored = session.scalar(
            select(TimelineVersion.id).where(
                TimelineVersion.name == timeline.name,
                TimelineVersion.version == timeline.version,
                TimelineVersion.digest == timeline.digest,
            )
        )
        assert stored is not None, "the unique key was taken by this very version"
        return stored
    return row.id


def stored_version(session: Session, version_id: int) -> TimelineVersion | None:
    return session.get(TimelineVersion, version_id)
