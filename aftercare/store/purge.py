"""Data retention: strip contact details and free text from patients whose care ended long ago.

A patient qualifies when every one of their enrollments is finished (completed or cancelled, no
message pending, sending or paused) and nothing happened on any of them since the cutoff: the
enrollment's own changes, its messages' sends and updates, and replies from the patient. Staff
and cron may run it while daemons send: each batch of patients is one short transaction, and on
PostgreSQL rows another transaction holds are skipped (``SKIP LOCKED``), left for the next run.

What goes: name, phone, email and external id; reply bodies and numbers; the free-text reasons on
events and enrollments (staff may quote the patient there); the hospital's visit numbers (HL7
PV1-19) and FHIR Patient ids kept for intake. What stays: everything the counts
and reports are made of (statuses, steps, channels, attempts, times, error codes, event kinds).

Opt-out records (``suppression``) stay on purpose: a number or address that said STOP must never
be sent to again, even if it is enrolled anew years later.

Each purged enrollment gets a ``purged`` event, which is also how a later run knows it is done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, exists, func, not_, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from aftercare.db import transaction
from aftercare.models import (
    Enrollment,
    Event,
    FhirEncounter,
    Hl7Message,
    Message,
    Patient,
    Reply,
)
from aftercare.statuses import EnrollmentStatus, EventKind, MessageStatus
from aftercare.store.events import record

PURGED_NAME = "(purged)"
# The phone column is not unique, so one placeholder serves every purged patient; it is no
# number, so no reply can ever be matched to a purged patient.
PURGED_PHONE = "purged"
PURGED_BODY = "(purged)"
PURGED_KIND = EventKind.PURGED

_FINISHED = (EnrollmentStatus.COMPLETED, EnrollmentStatus.CANCELLED)
_UNFINISHED_MESSAGES = (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.PAUSED)


@dataclass(frozen=True)
class Plan:
    cutoff: datetime  # last activity before this qualifies
    batch_size: int
    dry_run: bool
    actor: str
    now: datetime


def purge(sessions: sessionmaker[Session], plan: Plan) -> Counter[str]:
    """Purge (or, dry run, count) what qualifies, batch by batch. Returns the counts of patients,
    enrollments, replies and events (reasons cleared), and batches."""
    totals: Counter[str] = Counter()
    after = 0
    while True:
        with transaction(sessions) as session:
            patient_ids = _next_patients(session, plan, after)
            if not patient_ids:
                return totals
            totals.update(_purge_batch(session, patient_ids, plan))
        totals["batches"] += 1
        after = patient_ids[-1]


def _next_patients(session: Session, plan: Plan, after: int) -> list[int]:
    query = (
        select(Patient.id)
        .where(Patient.id > after, _has_unpurged_enrollment(), _all_enrollments_qualify(plan))
        .order_by(Patient.id)
        .limit(plan.batch_size)
    )
    if not plan.dry_run:
        # Locks the patients (not SQLite: BEGIN IMMEDIATE already makes this batch the only
        # writer); an enroll or reply holding one makes us skip that patient this time.
        query = query.with_for_update(of=Patient, skip_locked=True)
    return list(session.scalars(query))


def _has_unpurged_enrollment() -> ColumnElement[bool]:
    done = exists().where(Event.enrollment_id == Enrollment.id, Event.kind == PURGED_KIND)
    return exists().where(Enrollment.patient_id == Patient.id, not_(done))


def _all_enrollments_qualify(plan: Plan) -> ColumnElement[bool]:
    unfinished_message = exists().where(
        Message.enrollment_id == Enrollment.id, Message.status.in_(_UNFINISHED_MESSAGES)
    )
    recent_message = exists().where(
        Message.enrollment_id == Enrollment.id,
        or_(Message.sent_at >= plan.cutoff, Message.updated_at >= plan.cutoff),
    )
    recent_reply = exists().where(
        Reply.enrollment_id == Enrollment.id, Reply.received_at >= plan.cutoff
    )
    qualifies = and_(
        Enrollment.status.in_(_FINISHED),
        Enrollment.updated_at < plan.cutoff,
        not_(unfinished_message),
        not_(recent_message),
        not_(recent_reply),
    )
    # Replies matched to the patient but to none of their enrollments count too.
    recent_patient_reply = exists().where(
        Reply.patient_id == Patient.id, Reply.received_at >= plan.cutoff
    )
    return and_(
        not_(exists().where(Enrollment.patient_id == Patient.id, not_(qualifies))),
        not_(recent_patient_reply),
    )


def _purge_batch(session: Session, patient_ids: Sequence[int], plan: Plan) -> Counter[str]:
    enrollment_ids = list(
        session.scalars(select(Enrollment.id).where(Enrollment.patient_id.in_(patient_ids)))
    )
    phones = list(session.scalars(select(Patient.phone).where(Patient.id.in_(patient_ids))))
    replies = _replies(patient_ids, enrollment_ids, phones)
    events = and_(_events(enrollment_ids), Event.reason.is_not(None))
    counts = Counter({"patients": len(patient_ids), "enrollments": len(enrollment_ids)})
    if plan.dry_run:
        counts["replies"] = _count(session, Reply, replies)
        counts["events"] = _count(session, Event, events)
        return counts
    counts["replies"] = _update(
        session, update(Reply).where(replies).values(body=PURGED_BODY, from_number=PURGED_PHONE)
    )
    counts["events"] = _update(session, update(Event).where(events).values(reason=None))
    _update(
        session,
        update(Enrollment).where(Enrollment.id.in_(enrollment_ids)).values(status_reason=None),
    )
    # A hospital's visit number or FHIR Patient id points at the patient as an MRN does.
    of_these = Hl7Message.enrollment_id.in_(enrollment_ids)
    _update(session, update(Hl7Message).where(of_these).values(visit=None))
    linked = FhirEncounter.enrollment_id.in_(enrollment_ids)
    _update(session, update(FhirEncounter).where(linked).values(patient_ref=None))
    _update(
        session,
        update(Patient)
        .where(Patient.id.in_(patient_ids))
        .values(
            first_name=PURGED_NAME,
            phone=PURGED_PHONE,
            email=None,
            external_id=None,
            identity_key=None,
        ),
    )
    for enrollment_id in enrollment_ids:
        record(session, PURGED_KIND, plan.actor, plan.now, enrollment_id)
    return counts


def _replies(
    patient_ids: Sequence[int], enrollment_ids: Sequence[int], phones: Sequence[str]
) -> ColumnElement[bool]:
    """The patients' replies, and replies from their numbers that matched no patient (they came
    before the enrollment), unless a patient who stays still has that number."""
    kept_patient_has_number = exists().where(
        Patient.phone == Reply.from_number, Patient.id.not_in(patient_ids)
    )
    unmatched = and_(
        Reply.patient_id.is_(None),
        Reply.from_number.in_(phones),
        not_(kept_patient_has_number),
    )
    return or_(
        Reply.patient_id.in_(patient_ids), Reply.enrollment_id.in_(enrollment_ids), unmatched
    )


def _events(enrollment_ids: Sequence[int]) -> ColumnElement[bool]:
    their_messages = select(Message.id).where(Message.enrollment_id.in_(enrollment_ids))
    return or_(Event.enrollment_id.in_(enrollment_ids), Event.message_id.in_(their_messages))


def _count(session: Session, table: Any, where: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(table).where(where)) or 0


def _update(session: Session, statement: Any) -> int:
    """Run an UPDATE; returns the rows changed. Nothing purged is loaded in the session, so there
    is nothing for SQLAlchemy to keep in step."""
    options = {"synchronize_session": False}
    result = cast(CursorResult[Any], session.execute(statement, execution_options=options))
    return result.rowcount
