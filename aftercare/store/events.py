"""The audit log: every event row is written here, one ``executemany`` a batch.

The dispatcher's hot path writes an event a message, so rows go through the driver's
executemany (:class:`aftercare.store.bulk.BulkInsert`) rather than the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, sessionmaker

from aftercare.models import Event, Message
from aftercare.statuses import EventKind
from aftercare.store.bulk import BulkInsert

COLUMNS = ("at", "kind", "actor", "enrollment_id", "message_id", "reason", "detail")


@dataclass(frozen=True, slots=True)
class NewEvent:
    kind: EventKind
    actor: str
    enrollment_id: int | None = None
    message_id: int | None = None
    reason: str | None = None
    detail: Mapping[str, Any] | None = None


def write(session: Session, at: datetime, events: Iterable[NewEvent]) -> None:
    """Append ``events``, all at ``at``, in the session's transaction."""
    writer = BulkInsert(session.connection(), Event, COLUMNS)
    when = writer.converter("at")(at)
    kind = writer.converter("kind")
    detail = writer.converter("detail", remember=False)  # dicts are not hashable
    writer.execute(
        [
            (
                when,
                kind(e.kind),
                e.actor,
                e.enrollment_id,
                e.message_id,
                e.reason,
                detail(None if e.detail is None else dict(e.detail)),
            )
            for e in events
        ]
    )


def record(
    session: Session,
    kind: EventKind,
    actor: str,
    now: datetime,
    enrollment_id: int | None = None,
    message_id: int | None = None,
    reason: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> None:
    """Append one event."""
    write(session, now, [NewEvent(kind, actor, enrollment_id, message_id, reason, detail)])


def for_messages(
    session: Session, ids: Sequence[int], kind: EventKind, actor: str, now: datetime, reason: str
) -> None:
    """The same event for each of the messages ``ids`` (their enrollments looked up)."""
    if not ids:
        return
    enrollment_of = dict(
        session.execute(
            select(Message.id, Message.enrollment_id).where(Message.id.in_(list(ids)))
        ).all()
    )
    write(session, now, [NewEvent(kind, actor, enrollment_of[i], i, reason) for i in ids])


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    at: datetime
    kind: EventKind
    actor: str
    enrollment_id: int | None
    message_id: int | None
    reason: str | None
    detail: dict[str, Any] | None


def between(
    sessions: sessionmaker[Session],
    since: datetime,
    until: datetime | None = None,
    enrollment_id: int | None = None,
    batch: int = 1000,
) -> Iterator[EventRow]:
    """The events at or after ``since`` (and before ``until``), oldest first, read ``batch`` at
    a time, each batch in its own short transaction (keyset paging on (at, id))."""
    query = select(*_COLUMNS).where(Event.at >= since).order_by(Event.at, Event.id).limit(batch)
    if until is not None:
        query = query.where(Event.at < until)
    if enrollment_id is not None:
        query = query.where(Event.enrollment_id == enrollment_id)
    after: tuple[datetime, int] | None = None
    while True:
        page = query
        if after is not None:
            at, last_id = after
            page = query.where(or_(Event.at > at, and_(Event.at == at, Event.id > last_id)))
        with sessions() as session:
            rows = [EventRow(*row) for row in session.execute(page)]
        yield from rows
        if len(rows) < batch:
            return
        after = (rows[-1].at, rows[-1].id)


def of_enrollment(session: Session, enrollment_id: int) -> list[EventRow]:
    query = select(*_COLUMNS).where(Event.enrollment_id == enrollment_id).order_by(Event.id)
    return [EventRow(*row) for row in session.execute(query)]


_COLUMNS = (
    Event.id,
    Event.at,
    Event.kind,
    Event.actor,
    Event.enrollment_id,
    Event.message_id,
    Event.reason,
    Event.detail,
)


def of_kinds(session: Session, kinds: Sequence[EventKind]) -> list[EventRow]:
    query = select(*_COLUMNS).where(Event.kind.in_(list(kinds))).order_by(Event.id)
    return [EventRow(*row) for row in session.execute(query)]
