"""Reads and writes of the intake paths: HL7 messages and ACKs, visits, contact edits, merges,
FHIR encounters and write-back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aftercare.identity import active_key, identity_key
from aftercare.models import (
    Enrollment,
    FhirCursor,
    FhirEncounter,
    FhirWriteback,
    Hl7Message,
    Message,
    Patient,
    Reply,
)
from aftercare.statuses import (
    EnrollmentStatus,
    EventKind,
    IntakeOutcome,
    MessageStatus,
    ReplyKind,
)
from aftercare.store import events


@dataclass(frozen=True)
class StoredAck:
    digest: str
    ack: str
    ack_code: str


@dataclass(frozen=True)
class Hl7Record:
    sender: str
    control_id: str
    event: str
    digest: str
    outcome: IntakeOutcome
    ack_code: str
    ack: str
    problem: str | None
    visit: str | None
    enrollment_id: int | None
    received_at: datetime


def find_hl7_message(session: Session, sender: str, control_id: str) -> StoredAck | None:
    row = session.execute(
        select(Hl7Message.digest, Hl7Message.ack, Hl7Message.ack_code).where(
            Hl7Message.sender == sender, Hl7Message.control_id == control_id
        )
    ).first()
    return StoredAck(*row) if row else None


def save_hl7_message(session: Session, record: Hl7Record) -> None:
    session.add(
        Hl7Message(
            sender=record.sender,
            control_id=record.control_id,
            event=record.event,
            digest=record.digest,
            outcome=record.outcome,
            ack_code=record.ack_code,
            ack=record.ack,
            problem=record.problem,
            visit=record.visit,
            enrollment_id=record.enrollment_id,
            received_at=record.received_at,
        )
    )
    session.flush()  # the unique (sender, control id) is checked here, inside the retry


def audit(
    session: Session,
    kind: EventKind,
    actor: str,
    now: datetime,
    detail: Mapping[str, Any],
    enrollment_ids: Sequence[int] = (),
) -> None:
    """One event per enrollment the message touched (so ``patients show`` lists it), or one."""
    events.write(
        session,
        now,
        [events.NewEvent(kind, actor, i, detail=detail) for i in enrollment_ids or (None,)],
    )


def hl7_counts(session: Session) -> dict[str, int]:
    """Messages stored, by outcome (enrolled, ignored, error, ...)."""
    query = select(Hl7Message.outcome, func.count()).group_by(Hl7Message.outcome)
    return {outcome.value: count for outcome, count in session.execute(query)}


def open_enrollments_of_visit(session: Session, external_id: str, visit: str) -> list[int]:
    """Active or paused enrollments a message about this patient's visit created."""
    query = (
        select(Enrollment.id)
        .join(Hl7Message, Hl7Message.enrollment_id == Enrollment.id)
        .join(Patient, Patient.id == Enrollment.patient_id)
        .where(
            Patient.external_id == external_id,
            Hl7Message.visit == visit,
            Hl7Message.outcome.in_((IntakeOutcome.ENROLLED, IntakeOutcome.ALREADY_ENROLLED)),
            Enrollment.status.in_((EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)),
        )
        .distinct()
        .order_by(Enrollment.id)
    )
    return list(session.scalars(query))


def is_open(session: Session, enrollment_id: int) -> bool:
    status = session.scalar(select(Enrollment.status).where(Enrollment.id == enrollment_id))
    return status in (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


def patient_by_external_id(session: Session, external_id: str) -> int | None:
    return session.scalar(select(Patient.id).where(Patient.external_id == external_id))


def timezone_of(session: Session, patient_id: int) -> str:
    return session.get_one(Patient, patient_id).timezone


@dataclass(frozen=True)
class Merged:
    enrollment_ids: list[int]  # the survivor's, after the merge
    duplicates: list[int]  # the prior record's that the survivor already had: to be cancelled


def merge_patients(
    session: Session, external_id: str, prior: str, actor: str, now: datetime
) -> Merged | None:
    """Fold the patient with MRN ``prior`` into the one with ``external_id``.

    When only the prior record exists it takes the surviving MRN (and the identity key that goes
    with it). Otherwise its enrollments and replies move to the survivor, except one the
    survivor already has (same procedure and discharge time) or an open one of a procedure the
    survivor has open (one open enrollment per patient and procedure): those stay with the
    emptied prior record for the caller to cancel. None when there is no prior record.
    """
    prior_id = patient_by_external_id(session, prior)
    if prior_id is None:
        return None
    survivor_id = patient_by_external_id(session, external_id)
    if survivor_id is None:
        patient = session.get_one(Patient, prior_id)
        patient.external_id = external_id
        patient.identity_key = identity_key(external_id, patient.phone, patient.first_name)
        merged = Merged(_enrollments_of(session, prior_id), [])
    else:
        survivors = list(
            session.scalars(select(Enrollment).where(Enrollment.patient_id == survivor_id))
        )
        kept = {(e.procedure, e.discharged_at) for e in survivors}
        open_there = {e.procedure for e in survivors if e.active_key is not None}
        duplicates = []
        prior_enrollments = select(Enrollment).where(Enrollment.patient_id == prior_id)
        for enrollment in session.scalars(prior_enrollments):
            is_open = enrollment.active_key is not None
            if (enrollment.procedure, enrollment.discharged_at) in kept or (
                is_open and enrollment.procedure in open_there
            ):
                duplicates.append(enrollment.id)
                continue
            enrollment.patient_id = survivor_id
            if is_open:
                enrollment.active_key = active_key(survivor_id, enrollment.procedure)
        session.execute(
            update(Reply).where(Reply.patient_id == prior_id).values(patient_id=survivor_id)
        )
        emptied = session.get_one(Patient, prior_id)
        emptied.external_id = emptied.identity_key = None
        session.flush()
        merged = Merged(_enrollments_of(session, survivor_id), duplicates)
    detail = {"prior_patient": prior_id, "duplicates": merged.duplicates}
    audit(session, EventKind.PATIENTS_MERGED, actor, now, detail, merged.enrollment_ids)
    return merged


def _enrollments_of(session: Session, patient_id: int) -> list[int]:
    query = select(Enrollment.id).where(Enrollment.patient_id == patient_id)
    return list(session.scalars(query.order_by(Enrollment.id)))


# --- FHIR ---------------------------------------------------------------------------------------


def fhir_cursor(session: Session, base: str) -> datetime | None:
    return session.scalar(select(FhirCursor.since).where(FhirCursor.base == base))


def set_fhir_cursor(session: Session, base: str, since: datetime) -> None:
    row = session.get(FhirCursor, base)
    if row is None:
        session.add(FhirCursor(base=base, since=since))
    else:
        row.since = since


def fhir_encounter_seen(session: Session, base: str, encounter_id: str) -> bool:
    query = select(FhirEncounter.id).where(
        FhirEncounter.base == base, FhirEncounter.encounter_id == encounter_id
    )
    return session.scalar(query) is not None


def save_fhir_encounter(
    session: Session,
    base: str,
    encounter_id: str,
    patient_ref: str | None,
    outcome: IntakeOutcome,
    enrollment_id: int | None,
    problem: str | None,
    now: datetime,
) -> None:
    session.add(
        FhirEncounter(
            base=base,
            encounter_id=encounter_id,
            patient_ref=patient_ref,
            outcome=outcome,
            enrollment_id=enrollment_id,
            problem=problem,
            received_at=now,
        )
    )
    session.flush()


@dataclass(frozen=True)
class WritebackItem:
    kind: str  # "message", "reply" or "pain"
    local_id: int
    patient_ref: str
    encounter_ref: str | None
    at: datetime
    text: str


def writeback_pending(session: Session, base: str, limit: int) -> list[WritebackItem]:
    """Sent messages, replies and pain scores of this server's patients not written back yet.

    A message is written back as its step and channel, not its text: the record needs to know
    what the patient was sent, and the text is the timeline's, versioned in ``schedules/``.
    """
    linked = (
        select(FhirEncounter.enrollment_id, FhirEncounter.patient_ref, FhirEncounter.encounter_id)
        .where(FhirEncounter.base == base, FhirEncounter.enrollment_id.is_not(None))
        .subquery()
    )
    done = {
        (kind, local_id)
        for kind, local_id in session.execute(
            select(FhirWriteback.kind, FhirWriteback.local_id).where(FhirWriteback.base == base)
        )
    }
    items: list[WritebackItem] = []
    sent = session.execute(
        select(
            Message.id,
            Message.step,
            Message.channel,
            Message.sent_at,
            linked.c.patient_ref,
            linked.c.encounter_id,
        )
        .join(linked, linked.c.enrollment_id == Message.enrollment_id)
        .where(
            Message.status.in_((MessageStatus.SENT, MessageStatus.DELIVERED)),
            Message.sent_at.is_not(None),
        )
        .order_by(Message.id)
    )
    for message_id, step, channel, sent_at, patient_ref, encounter_id in sent:
        if ("message", message_id) not in done:
            items.append(
                WritebackItem(
                    "message", message_id, patient_ref, encounter_id, sent_at, f"{step} ({channel})"
                )
            )
    replies = session.execute(
        select(
            Reply.id,
            Reply.kind,
            Reply.body,
            Reply.pain_score,
            Reply.received_at,
            linked.c.patient_ref,
            linked.c.encounter_id,
        )
        .join(linked, linked.c.enrollment_id == Reply.enrollment_id)
        .order_by(Reply.id)
    )
    for reply_id, kind, body, score, received_at, patient_ref, encounter_id in replies:
        if ("reply", reply_id) not in done:
            items.append(
                WritebackItem("reply", reply_id, patient_ref, encounter_id, received_at, body)
            )
        if kind == ReplyKind.PAIN and score is not None and ("pain", reply_id) not in done:
            items.append(
                WritebackItem("pain", reply_id, patient_ref, encounter_id, received_at, str(score))
            )
    return [i for i in items if i.patient_ref][:limit]


def mark_written_back(
    session: Session, base: str, kind: str, local_id: int, server_id: str, now: datetime
) -> None:
    session.add(
        FhirWriteback(base=base, kind=kind, local_id=local_id, server_id=server_id, written_at=now)
    )


# --- the REST API -------------------------------------------------------------------------------


def enrollments_of_external_id(session: Session, external_id: str) -> list[Enrollment]:
    query = (
        select(Enrollment)
        .join(Patient, Patient.id == Enrollment.patient_id)
        .where(Patient.external_id == external_id)
        .order_by(Enrollment.id.desc())
    )
    return list(session.scalars(query))
