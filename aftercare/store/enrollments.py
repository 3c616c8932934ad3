"""Enrolling patients: plan and store the timelines of checked requests, in batches.

One code path serves ``enroll`` (a batch of one) and ``import`` (batches of a thousand), and the
database, not a look beforehand, decides who is new: patients are inserted on their identity key
and enrollments on their active key (one open enrollment per patient and procedure), both unique,
with ``ON CONFLICT DO NOTHING``. A request that loses a race to another process (or that repeats
an earlier one) then finds the row the winner wrote. So:

* the same patient, procedure and discharge time gives back the enrollment already stored;
* the same patient and procedure with another discharge time, while the first is open, is
  refused, naming the enrollment to ``reschedule``;
* a patient on file keeps their phone, email and language: a request that gives others is refused,
  naming ``patients edit`` (see :mod:`aftercare.store.patients`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Table, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aftercare.config import Settings
from aftercare.enrollment import EnrollmentRequest
from aftercare.errors import InputError
from aftercare.identity import active_key
from aftercare.models import Enrollment, Patient
from aftercare.planner import PlannedMessage, plan
from aftercare.statuses import EnrollmentStatus, EventKind, MessageStatus
from aftercare.store import bulk, events
from aftercare.store.events import NewEvent


@dataclass(frozen=True)
class Enrolled:
    enrollment_id: int
    created: bool
    messages: int


@dataclass(frozen=True)
class Refused:
    """A request that would have changed what is on file; ``enrollment_id`` is the patient's
    enrollment it collides with (the one to reschedule or edit)."""

    enrollment_id: int
    error: InputError


Result = Enrolled | Refused


@dataclass(frozen=True)
class _OnFile:
    id: int
    phone: str
    email: str | None
    timezone: str
    language: str


def enroll_many(
    session: Session,
    requests: Sequence[EnrollmentRequest],
    settings: Settings,
    now: datetime,
    actor: str,
) -> list[Result]:
    """Store the requests' patients, enrollments and planned messages in the caller's transaction.

    Returns one result per request, in order: ``Enrolled`` (``created=False`` for an enrollment
    that exists already, or came earlier in the same batch) or ``Refused``.
    """
    patients = _patients(session, requests, now)
    mismatches = {slot: m for slot, r in enumerate(requests) if (m := _mismatch(r, patients))}
    candidates = [(slot, r) for slot, r in enumerate(requests) if slot not in mismatches]
    results = _enrollments(session, candidates, patients, settings, now, actor)
    latest = _latest_enrollments(session, {patients[requests[s].identity].id for s in mismatches})
    for slot, error in mismatches.items():
        enrollment_id = latest.get(patients[requests[slot].identity].id, 0)
        problem = error.problem.replace("{id}", str(enrollment_id))
        results[slot] = Refused(enrollment_id, InputError(error.field, problem))
    return [results[slot] for slot in range(len(requests))]


# --- patients ------------------------------------------------------------------------------------


def _patients(
    session: Session, requests: Sequence[EnrollmentRequest], now: datetime
) -> dict[str, _OnFile]:
    """The patient on file for each request's identity, inserting those not seen before (from
    the first request that names them). Rows go in identity order, so concurrent batches lock
    them in one order and never deadlock."""
    first: dict[str, EnrollmentRequest] = {}
    for request in requests:
        first.setdefault(request.identity, request)
    rows = [_patient_row(key, first[key], now) for key in sorted(first)]
    if rows:
        session.execute(_insert_new(session, bulk.table_of(Patient)), rows)
    query = select(
        Patient.identity_key,
        Patient.id,
        Patient.phone,
        Patient.email,
        Patient.timezone,
        Patient.language,
    ).where(Patient.identity_key.in_(list(first)))
    return {
        str(key): _OnFile(patient_id, phone, email, timezone, language)
        for key, patient_id, phone, email, timezone, language in session.execute(query)
    }


def _patient_row(key: str, request: EnrollmentRequest, now: datetime) -> dict[str, Any]:
    return {
        "external_id": request.external_id,
        "first_name": request.first_name,
        "phone": request.phone,
        "email": request.email,
        "timezone": request.timezone,
        "language": request.language,
        "created_at": now,
        "identity_key": key,
    }


def _insert_new(session: Session, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING``: a row whose unique key is taken is skipped (on
    PostgreSQL, once the transaction that took it commits), never a second row or an error."""
    dialect = session.get_bind().dialect.name
    module: Any = postgresql if dialect == "postgresql" else sqlite
    statement: Insert = module.insert(table).on_conflict_do_nothing()
    return statement


def _mismatch(request: EnrollmentRequest, patients: Mapping[str, _OnFile]) -> InputError | None:
    """What in the request differs from the patient on file (the fix is ``patients edit``)."""
    on_file = patients[request.identity]
    edit = "change it first with 'aftercare patients edit {id}"
    if request.phone != on_file.phone:
        return InputError("phone", f"differs from the patient's number on file; {edit} --phone'")
    if request.email and request.email.lower() != (on_file.email or "").lower():
        return InputError("email", f"differs from the patient's address on file; {edit} --email'")
    if request.timezone != on_file.timezone:
        return InputError(
            "timezone", f"the patient's time zone on file is {on_file.timezone}; enroll with it"
        )
    if request.language_given and request.language != on_file.language:
        return InputError(
            "language",
            f"the patient's language on file is {on_file.language}; "
            f"{edit} --language {request.language}'",
        )
    if on_file.language not in request.timeline.languages:
        return InputError(
            "language",
            f"the patient's language on file ({on_file.language}) is not offered for "
            f"{request.timeline.name}",
        )
    return None


def _latest_enrollments(session: Session, patient_ids: set[int]) -> dict[int, int]:
    if not patient_ids:
        return {}
    query = (
        select(Enrollment.patient_id, func.max(Enrollment.id))
        .where(Enrollment.patient_id.in_(patient_ids))
        .group_by(Enrollment.patient_id)
    )
    return {patient_id: enrollment_id for patient_id, enrollment_id in session.execute(query)}


# --- enrollments ---------------------------------------------------------------------------------

_Exact = tuple[int, str, datetime]  # (patient id, procedure, discharge time): the unique key


def _enrollments(
    session: Session,
    candidates: Sequence[tuple[int, EnrollmentRequest]],
    patients: Mapping[str, _OnFile],
    settings: Settings,
    now: datetime,
    actor: str,
) -> dict[int, Result]:
    """Results by slot: each request is the enrollment on file, refused beside an open one of
    another discharge time, or new (inserted, planned)."""
    keyed = [(slot, r, patients[r.identity].id) for slot, r in candidates]
    firsts: dict[str, _First] = {}
    for slot, request, patient_id in keyed:
        firsts.setdefault(
            active_key(patient_id, request.timeline.name), (slot, request, patient_id)
        )
    results: dict[int, Result] = {}
    pending = _settle_all(session, firsts, results)
    if pending:
        results |= _insert(session, pending, settings, now, actor)
        lost = {key: first for key, first in pending.items() if first[0] not in results}
        # Rows another process committed while we waited on their keys: found now.
        assert not _settle_all(session, lost, results), "neither inserted nor found"
    for slot, request, patient_id in keyed:
        if slot not in results:  # a later request of the same patient and procedure
            earlier = firsts[active_key(patient_id, request.timeline.name)]
            results[slot] = _repeat(request, earlier[1], results[earlier[0]])
    return results


_First = tuple[int, EnrollmentRequest, int]  # (slot, request, patient id)


def _settle_all(
    session: Session, firsts: Mapping[str, _First], results: dict[int, Result]
) -> dict[str, _First]:
    """Settle each request that the enrollments on file answer; returns the others."""
    exact, open_ = _on_file(session, {patient_id for _, _, patient_id in firsts.values()})
    left: dict[str, _First] = {}
    for key, (slot, request, patient_id) in firsts.items():
        found = _settle(request, patient_id, key, exact, open_)
        if found is None:
            left[key] = (slot, request, patient_id)
        else:
            results[slot] = found
    return left


def _settle(
    request: EnrollmentRequest,
    patient_id: int,
    key: str,
    exact: Mapping[_Exact, int],
    open_: Mapping[str, tuple[int, datetime]],
) -> Result | None:
    same = exact.get((patient_id, request.timeline.name, request.discharged_at))
    if same is not None:
        return Enrolled(same, False, 0)
    if key in open_:
        enrollment_id, discharged_at = open_[key]
        return Refused(enrollment_id, _conflict(request, enrollment_id, discharged_at))
    return None


def _repeat(request: EnrollmentRequest, earlier: EnrollmentRequest, first: Result) -> Result:
    if isinstance(first, Refused) or earlier.discharged_at == request.discharged_at:
        return first if isinstance(first, Refused) else Enrolled(first.enrollment_id, False, 0)
    return Refused(
        first.enrollment_id, _conflict(request, first.enrollment_id, earlier.discharged_at)
    )


def _conflict(
    request: EnrollmentRequest, enrollment_id: int, discharged_at: datetime
) -> InputError:
    return InputError(
        "discharged_at",
        f"the patient is already enrolled in {request.timeline.name} "
        f"(enrollment {enrollment_id}, discharged {discharged_at:%Y-%m-%d %H:%M}Z); to correct "
        f"the time run 'aftercare reschedule {enrollment_id} --discharged-at "
        f"{request.discharged_at.isoformat()}' (or enroll with --reschedule)",
    )


def _on_file(
    session: Session, patient_ids: Iterable[int]
) -> tuple[dict[_Exact, int], dict[str, tuple[int, datetime]]]:
    """The patients' enrollments by unique key, and their open ones by active key."""
    ids = set(patient_ids)
    if not ids:
        return {}, {}
    query = select(
        Enrollment.id,
        Enrollment.patient_id,
        Enrollment.procedure,
        Enrollment.discharged_at,
        Enrollment.active_key,
    ).where(Enrollment.patient_id.in_(ids))
    exact: dict[_Exact, int] = {}
    open_: dict[str, tuple[int, datetime]] = {}
    for enrollment_id, patient_id, procedure, discharged_at, key in session.execute(query):
        exact[(patient_id, procedure, discharged_at)] = enrollment_id
        if key is not None:
            open_[key] = (enrollment_id, discharged_at)
    return exact, open_


def _insert(
    session: Session,
    new: Mapping[str, _First],
    settings: Settings,
    now: datetime,
    actor: str,
) -> dict[int, Result]:
    """Insert, plan and log the enrollments no one else has; results by slot of those inserted
    (the others lost to a concurrent writer and are looked up again)."""
    rows = [_enrollment_row(key, *new[key], now) for key in sorted(new)]
    table = bulk.table_of(Enrollment)
    statement = _insert_new(session, table).returning(table.c.id, table.c.active_key)
    ids = {key: enrollment_id for enrollment_id, key in session.execute(statement, rows)}
    inserted = [(ids[key], new[key]) for key in sorted(ids)]
    # A generator: each plan becomes rows and is dropped, so a batch never holds 18,000 plans.
    plans = (
        (i, plan(r.timeline, r.timezone, r.discharged_at, r.channels, settings.quiet_hours))
        for i, (_, r, _) in inserted
    )
    counts = bulk.insert_messages(session.connection(), plans)
    events.write(
        session,
        now,
        [
            event
            for (enrollment_id, _), count in zip(inserted, counts, strict=True)
            for event in (
                NewEvent(EventKind.ENROLLED, actor, enrollment_id),
                NewEvent(EventKind.PLANNED, actor, enrollment_id, detail={"messages": count}),
            )
        ],
    )
    return {
        slot: Enrolled(enrollment_id, True, count)
        for (enrollment_id, (slot, _, _)), count in zip(inserted, counts, strict=True)
    }


def _enrollment_row(
    key: str, _slot: int, request: EnrollmentRequest, patient_id: int, now: datetime
) -> dict[str, Any]:
    return {
        "patient_id": patient_id,
        "procedure": request.timeline.name,
        "schedule_version": request.timeline.version,
        "channels": ",".join(request.channels),
        "discharged_at": request.discharged_at,
        "status": EnrollmentStatus.ACTIVE.value,
        "created_at": now,
        "updated_at": now,
        "active_key": key,
    }


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


def enrollments_of_external_id(session: Session, external_id: str) -> list[int]:
    """The enrollment ids of the patient with this MRN, oldest first (none: no such patient)."""
    return list(
        session.scalars(
            select(Enrollment.id)
            .join(Patient, Enrollment.patient_id == Patient.id)
            .where(Patient.external_id == external_id)
            .order_by(Enrollment.id)
        )
    )
