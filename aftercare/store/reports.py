"""The numbers operators watch, read from the database: one query per question.

``aftercare stats`` prints them; ``/metrics`` exposes the same ones to Prometheus. Every process
sharing the database sees the same numbers, because nothing here is kept in memory.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aftercare.models import Enrollment, Message, Patient, Reply, Worker
from aftercare.statuses import EnrollmentStatus, MessageStatus


@dataclass(frozen=True)
class Backlog:
    """Pending messages already due, and since when the oldest of them has been due."""

    due: int
    oldest_due_at: datetime | None

    def lag_seconds(self, now: datetime) -> float:
        return (now - self.oldest_due_at).total_seconds() if self.oldest_due_at else 0.0


@dataclass(frozen=True)
class Snapshot:
    messages: list[tuple[str, str, int]]  # (status, channel, count)
    backlog: Backlog
    errors: list[tuple[str, int]]  # (provider code, messages)
    replies: list[tuple[str, bool, int]]  # (kind, urgent, count)
    urgent_unhandled: int
    workers: list[Worker]  # newest tick first


def messages_by_status(session: Session) -> list[tuple[str, str, int]]:
    query = select(Message.status, Message.channel, func.count()).group_by(
        Message.status, Message.channel
    )
    return [(status, channel, count) for status, channel, count in session.execute(query)]


def backlog(session: Session, now: datetime) -> Backlog:
    query = select(func.count(), func.min(Message.next_attempt_at)).where(
        Message.status == MessageStatus.PENDING, Message.next_attempt_at <= now
    )
    due, oldest = session.execute(query).one()
    return Backlog(due, oldest)


def provider_errors(session: Session) -> list[tuple[str, int]]:
    """Messages whose last attempt failed, by the provider's code."""
    query = (
        select(Message.error_code, func.count())
        .where(Message.error_code.is_not(None))
        .group_by(Message.error_code)
        .order_by(Message.error_code)
    )
    return [(str(code), count) for code, count in session.execute(query)]


def replies_by_kind(session: Session) -> list[tuple[str, bool, int]]:
    query = select(Reply.kind, Reply.urgent, func.count()).group_by(Reply.kind, Reply.urgent)
    return [(kind, bool(urgent), count) for kind, urgent, count in session.execute(query)]


def urgent_unhandled(session: Session) -> int:
    query = select(func.count()).where(Reply.urgent.is_(True), Reply.handled_at.is_(None))
    return session.scalar(query) or 0


def workers(session: Session) -> list[Worker]:
    """Every dispatcher heartbeat kept (the daemon forgets long-gone ones), newest first."""
    query = select(Worker).order_by(Worker.last_tick_at.desc(), Worker.id)
    return list(session.scalars(query))


def snapshot(session: Session, now: datetime) -> Snapshot:
    return Snapshot(
        messages=messages_by_status(session),
        backlog=backlog(session, now),
        errors=provider_errors(session),
        replies=replies_by_kind(session),
        urgent_unhandled=urgent_unhandled(session),
        workers=workers(session),
    )


def pending_by_channel(session: Session) -> dict[str, int]:
    query = (
        select(Message.channel, func.count())
        .where(Message.status == MessageStatus.PENDING)
        .group_by(Message.channel)
    )
    return {channel: count for channel, count in session.execute(query)}


def status_totals(session: Session) -> dict[MessageStatus, int]:
    """Messages by status, all channels together."""
    query = select(Message.status, func.count()).group_by(Message.status)
    return {status: count for status, count in session.execute(query)}


def sent_out_of_quiet_hours(session: Session) -> int:
    """Messages sent after quiet hours moved them."""
    query = select(func.count()).where(
        Message.status == MessageStatus.SENT, Message.due_at != Message.planned_at
    )
    return session.scalar(query) or 0


def first_names_by_message(session: Session) -> dict[int, str]:
    query = (
        select(Message.id, Patient.first_name)
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
    )
    return {message_id: name for message_id, name in session.execute(query)}


def enrollments(
    session: Session, status: EnrollmentStatus | None = None, limit: int | None = None
) -> list[Enrollment]:
    """Enrollments, newest first (with their patients)."""
    query = select(Enrollment).join(Patient).order_by(Enrollment.id.desc())
    if status:
        query = query.where(Enrollment.status == status)
    if limit:
        query = query.limit(limit)
    return list(session.scalars(query))


def message_counts(session: Session, ids: Iterable[int]) -> dict[int, dict[MessageStatus, int]]:
    """For each enrollment of ``ids``, its messages by status."""
    ids = list(ids)
    if not ids:
        return {}
    query = (
        select(Message.enrollment_id, Message.status, func.count())
        .where(Message.enrollment_id.in_(ids))
        .group_by(Message.enrollment_id, Message.status)
    )
    counts: dict[int, dict[MessageStatus, int]] = {}
    for enrollment_id, status, count in session.execute(query):
        counts.setdefault(enrollment_id, {})[status] = count
    return counts
