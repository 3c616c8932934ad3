"""Changing what is on file for a patient: the one way their phone, email or language change.

Enrolling never changes them (:mod:`aftercare.store.enrollments` refuses a request that differs);
staff do it here, through ``aftercare patients edit`` (and the console and HL7 feed call the same
function). Each edit is audited on every enrollment of the patient: who, when, why, and which
fields, never the values (the audit trail outlives the patient's contact details, see purge).
Messages not yet sent go to the new number or address, in the new language.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare.errors import InputError, NotFoundError
from aftercare.identity import identity_key
from aftercare.models import Enrollment, Patient
from aftercare.schedules.load import Catalog
from aftercare.statuses import EventKind
from aftercare.store import events
from aftercare.store.events import NewEvent


@dataclass(frozen=True)
class ContactChange:
    """New values, already checked (E.164 phone, valid address, language code); None: keep."""

    phone: str | None = None
    email: str | None = None
    language: str | None = None


def edit_contact(
    session: Session,
    patient_id: int,
    change: ContactChange,
    catalog: Catalog,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> list[str]:
    """Apply ``change`` to the patient in the caller's transaction; returns the names of the
    fields that changed (none: nothing written). Raises ``NotFoundError`` for an unknown patient
    and ``InputError`` (field ``phone`` or ``language``) for a change that cannot be made."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFoundError(f"id: no patient {patient_id}")
    changed = [
        f.name
        for f in fields(change)
        if getattr(change, f.name) is not None
        and getattr(change, f.name) != getattr(patient, f.name)
    ]
    if not changed:
        return []
    enrollments = list(
        session.scalars(select(Enrollment).where(Enrollment.patient_id == patient_id))
    )
    if change.language is not None:
        _check_language(change.language, enrollments, catalog)
    if "phone" in changed and change.phone is not None and not patient.external_id:
        patient.identity_key = _free_key(session, patient, change.phone)
    for name in changed:
        setattr(patient, name, getattr(change, name))
    events.write(
        session,
        now,
        [
            NewEvent(
                EventKind.CONTACT_EDITED, actor, e.id, reason=reason, detail={"fields": changed}
            )
            for e in enrollments
        ],
    )
    return changed


def _check_language(language: str, enrollments: list[Enrollment], catalog: Catalog) -> None:
    names = {e.procedure for e in enrollments} & set(catalog.names())
    for name in sorted(names):
        offered = catalog.get(name).languages
        if language not in offered:
            raise InputError(
                "language",
                f"{language!r} is not offered for {name} (choose from {', '.join(offered)})",
            )


def _free_key(session: Session, patient: Patient, phone: str) -> str:
    """The patient's identity with the new number; another patient holding it is an error (the
    unique index would refuse it anyway: this says so in words)."""
    key = identity_key(None, phone, patient.first_name)
    holder = session.scalar(
        select(Patient.id).where(Patient.identity_key == key, Patient.id != patient.id)
    )
    if holder is not None:
        raise InputError("phone", "another patient on file has this number and first name")
    return key
