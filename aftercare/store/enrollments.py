"""Enrolling patients: plan and store the timelines of checked requests, in batches.

One code path serves ``enroll`` (a batch of one) and ``import`` (batches of a thousand), so both
are idempotent the same way: the same patient (external id, or phone and first name when there is
none), procedure and discharge time gives back the enrollment already stored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from aftercare.config import Settings
from aftercare.enrollment import EnrollmentRequest, identity
from aftercare.models import Enrollment, Patient
from aftercare.planner import PlannedMessage, plan
from aftercare.statuses import EnrollmentStatus, EventKind, MessageStatus
from aftercare.store import bulk, events, timelines
from aftercare.store.events import NewEvent


@dataclass(frozen=True)
class Enrolled:
    enrollment_id: int
    created: bool
    messages: int


def enroll_many(
    session: Session,
    requests: Sequence[EnrollmentRequest],
    settings: Settings,
    now: datetime,
    actor: str,
) -> list[Enrolled]:
    """Store the requests' patients, enrollments and planned messages in the caller's transaction.

    Returns one result per request, in order. A request for an enrollment that exists already
    (or that came earlier in the same batch) returns that enrollment with ``created=False``.
    """
    patients = _patients(session, requests, now)
    existing = _existing_enrollments(session, requests, patients)
    results: list[Enrolled | None] = []
    new: list[EnrollmentRequest] = []
    new_slots: list[int] = []
    first_slot: dict[tuple[int, str, datetime], int] = {}
    repeats: dict[int, int] = {}  # slot -> slot of the same enrollment earlier in this batch
    for slot, request in enumerate(requests):
        key = _enrollment_key(request, patients)
        results.append(Enrolled(existing[key], False, 0) if key in existing else None)
        if key in existing:
            continue
        if key in first_slot:
            repeats[slot] = first_slot[key]
            continue
        first_slot[key] = slot
        new.append(request)
        new_slots.append(slot)
    ids, counts = _store_new(session, new, patients, settings, now, actor)
    for slot, enrollment_id, count in zip(new_slots, ids, counts, strict=True):
        results[slot] = Enrolled(enrollment_id, True, count)
    for slot, first in repeats.items():
        results[slot] = Enrolled(_done(results[first]).enrollment_id, False, 0)
    done = [_done(r) for r in results]
    caregivers = [
        replace(r.caregiver, caregiver_for=result.enrollment_id)
        for r, result in zip(requests, done, strict=True)
        if r.caregiver is not None
    ]
    if caregivers:
        enroll_many(session, caregivers, settings, now, actor)
    return done


def caregiver_enrollments(session: Session, enrollment_id: int) -> list[int]:
    """The open (active or paused) enrollments of the caregivers of a patient's enrollment."""
    query = select(Enrollment.id).where(
        Enrollment.caregiver_for == enrollment_id,
        Enrollment.status.in_((EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)),
    )
    return list(session.scalars(query.order_by(Enrollment.id)))


def _done(result: Enrolled | None) -> Enrolled:
    assert result is not None, "every request has a result"
    return result


def _patients(
    session: Session, requests: Sequence[EnrollmentRequest], now: datetime
) -> dict[tuple[str, ...], int]:
    """Patient ids by identity, inserting the patients not seen before.

    An existing patient keeps their id; their contact details and preferences are updated to the
    latest enrollment's, which is what staff just confirmed at discharge.
    """
    found = _find_patients(session, requests)
    latest = {r.identity: r for r in requests}
    updates = [_patient_update(found[i], r) for i, r in latest.items() if i in found]
    if updates:
        session.execute(update(Patient), updates)
    missing = [r for identity, r in latest.items() if identity not in found]
    if missing:
        table = bulk.table_of(Patient)
        # The ids come back with who they belong to, so they are matched by identity, not by
        # position: keeping RETURNING in input order makes SQLite insert one row per statement.
        statement = insert(table).returning(
            table.c.id, table.c.external_id, table.c.phone, table.c.first_name
        )
        rows = [_patient_row(r, now) for r in missing]
        for patient_id, mrn, phone, first_name in session.execute(statement, rows):
            found[identity(mrn, phone, first_name)] = patient_id
    return found


def _find_patients(
    session: Session, requests: Sequence[EnrollmentRequest]
) -> dict[tuple[str, ...], int]:
    mrns = {r.external_id for r in requests if r.external_id}
    phones = {r.phone for r in requests if not r.external_id}
    found: dict[tuple[str, ...], int] = {}
    if mrns:
        for pid, mrn in session.execute(
            select(Patient.id, Patient.external_id).where(Patient.external_id.in_(mrns))
        ):
            found[("mrn", str(mrn))] = pid
    if phones:
        query = select(Patient.id, Patient.phone, Patient.first_name).where(
            Patient.phone.in_(phones), Patient.external_id.is_(None)
        )
        for pid, phone, first_name in session.execute(query):
            found.setdefault(("phone", phone, first_name), pid)
    return found


def _patient_update(patient_id: int, request: EnrollmentRequest) -> dict[str, Any]:
    row = {
        "id": patient_id,
        "first_name": request.first_name,
        "phone": request.phone,
        "timezone": request.timezone,
        "language": request.language,
    }
    return row | ({"email": request.email} if request.email else {})


def _patient_row(request: EnrollmentRequest, now: datetime) -> dict[str, Any]:
    return {
        "external_id": request.external_id,
        "first_name": request.first_name,
        "phone": request.phone,
        "email": request.email,
        "timezone": request.timezone,
        "language": request.language,
        "created_at": now,
    }


def _enrollment_key(
    request: EnrollmentRequest, patients: Mapping[tuple[str, ...], int]
) -> tuple[int, str, datetime]:
    return (patients[request.identity], request.timeline.name, request.discharged_at)


def _existing_enrollments(
    session: Session, requests: Sequence[EnrollmentRequest], patients: Mapping[tuple[str, ...], int]
) -> dict[tuple[int, str, datetime], int]:
    keys = {_enrollment_key(r, patients) for r in requests}
    if not keys:
        return {}
    query = select(
        Enrollment.id, Enrollment.patient_id, Enrollment.procedure, Enrollment.discharged_at
    ).where(Enrollment.patient_id.in_({k[0] for k in keys}))
    found = {(pid, proc, at): eid for eid, pid, proc, at in session.execute(query)}
    return {key: found[key] for key in keys if key in found}


def _store_new(
    session: Session,
    new: Sequence[EnrollmentRequest],
    patients: Mapping[tuple[str, ...], int],
    settings: Settings,
    now: datetime,
    actor: str,
) -> tuple[list[int], list[int]]:
    """Write new enrollments with their messages and events; their ids and message counts."""
    if not new:
        return [], []
    connection = session.connection()
    versions = timelines.version_ids(session, {r.timeline for r in new}, now)
    bulk.insert_enrollments(connection, [(patients[r.identity], r) for r in new], versions, now)
    # Read back by the unique key (patient, procedure, discharge time), which names exactly the
    # rows just written: cheaper than RETURNING, which SQLAlchemy does row by row on SQLite.
    written = _existing_enrollments(session, new, patients)
    ids = [written[_enrollment_key(r, patients)] for r in new]
    # A generator: each plan becomes rows and is dropped, so a batch never holds all its plans.
    plans = (
        (
            i,
            plan(
                r.timeline,
                r.timezone,
                None if r.awaiting_discharge else r.discharged_at,
                r.channels,
                settings.quiet_hours,
                procedure_at=r.procedure_at,
                follow_up_at=r.follow_up_at,
                audience=r.audience,
            ),
        )
        for i, r in zip(ids, new, strict=True)
    )
    counts = bulk.insert_messages(connection, plans)
    events.write(
        session,
        now,
        [
            event
            for enrollment_id, count in zip(ids, counts, strict=True)
            for event in (
                NewEvent(EventKind.ENROLLED, actor, enrollment_id),
                NewEvent(EventKind.PLANNED, actor, enrollment_id, detail={"messages": count}),
            )
        ],
    )
    return ids, counts


def message_row(enrollment_id: int, planned: PlannedMessage) -> dict[str, Any]:
    """A new message row as ORM/Core parameters (the reschedule path adds rows this way)."""
    return {
        "enrollment_id": enrollment_id,
        "step": planned.step,
        "occurrence": planned.occurrence,
        "channel": planned.channel,
        "due_at": planned.due_at,
        "planned_at": planned.planned_at,
        "expires_at": planned.expires_at,
        "status": MessageStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": planned.due_at,
    }
