"""Suppressions: addresses that must not be sent to on a channel (STOP, 21610, unsubscribe)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from aftercare.models import Enrollment, Message, Patient, Suppression
from aftercare.statuses import ChannelName, EventKind, MessageStatus
from aftercare.store import events
from aftercare.store.claims import set_status, suppression_key


def suppress_address(
    session: Session,
    channel: ChannelName,
    address: str,
    reason: str,
    actor: str,
    now: datetime,
) -> int:
    """Record an opt-out and suppress every pending message to that address on that channel.

    The record is an upsert: concurrent opt-outs of one address (a double-clicked unsubscribe,
    STOP sent twice) all succeed, and one row stays."""
    key = suppression_key(channel, address)
    dialect = session.get_bind().dialect.name
    upsert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    session.execute(
        upsert(Suppression)
        .values(channel=channel, address=key, reason=reason, created_at=now)
        .on_conflict_do_nothing(index_elements=["channel", "address"])
    )
    column = Patient.phone if channel == ChannelName.SMS else func.lower(Patient.email)
    # Enrollments first, then their messages: joined in one query, SQLite would walk every
    # pending message through the status index instead of the patient's few.
    enrollment_ids = session.scalars(
        select(Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(column == key)
    ).all()
    ids = session.scalars(
        select(Message.id).where(
            Message.enrollment_id.in_(list(enrollment_ids)),
            Message.channel == channel,
            Message.status.in_([MessageStatus.PENDING, MessageStatus.PAUSED]),
        )
    ).all()
    set_status(session, ids, MessageStatus.SUPPRESSED, now)
    events.for_messages(session, ids, EventKind.SUPPRESSED, actor, now, reason)
    return len(ids)


def is_suppressed(session: Session, channel: ChannelName, address: str) -> bool:
    query = select(Suppression.id).where(
        Suppression.channel == channel, Suppression.address == address
    )
    return session.scalar(query) is not None


def lift(session: Session, channel: ChannelName, address: str) -> bool:
    """Let future messages to ``address`` go out again; False if it was not suppressed."""
    lifted = session.execute(
        delete(Suppression).where(Suppression.channel == channel, Suppression.address == address)
    ).rowcount  # type: ignore[attr-defined]
    return bool(lifted)


def unsubscribe_email(session: Session, patient_id: int, now: datetime) -> None:
    """The patient's one-click unsubscribe: suppress their email address, with its event."""
    patient = session.get(Patient, patient_id)
    if patient is None or not patient.email:
        return
    count = suppress_address(
        session, ChannelName.EMAIL, patient.email, "unsubscribe link", "patient", now
    )
    events.record(
        session,
        EventKind.OPTED_OUT,
        "patient",
        now,
        reason="email unsubscribe link",
        detail={"channel": ChannelName.EMAIL, "patient_id": patient.id, "messages": count},
    )
