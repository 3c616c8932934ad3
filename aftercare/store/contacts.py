"""Correcting a patient's contact details and language (``patients edit``, the patient page).

The values were checked by the caller with the enrollment's rules; this writes them, says which
fields changed in an event (the names of the fields, never the values: the log holds no phones or
addresses), and refuses what would leave a planned channel without an address.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from aftercare.enrollment import ContactChange
from aftercare.errors import InputError
from aftercare.statuses import ChannelName, EventKind
from aftercare.store.events import record
from aftercare.store.lifecycle import get_enrollment


def edit_contact(
    session: Session,
    enrollment_id: int,
    change: ContactChange,
    languages: tuple[str, ...],
    actor: str,
    now: datetime,
) -> list[str]:
    """Apply ``change`` to the patient of this enrollment; returns the fields that changed.
    ``languages`` are those the enrollment's timeline offers."""
    enrollment = get_enrollment(session, enrollment_id)
    patient = enrollment.patient
    if change.language is not None and change.language not in languages:
        raise InputError(
            "language",
            f"{change.language!r} is not offered for {enrollment.procedure} "
            f"(choose from {', '.join(languages)})",
        )
    wanted = {"phone": change.phone, "email": change.email, "language": change.language}
    changed = [
        name
        for name, value in wanted.items()
        if value is not None and value != getattr(patient, name)
    ]
    if ChannelName.EMAIL in enrollment.channel_list and not (change.email or patient.email):
        raise InputError("email", "is needed: this patient's reminders go by email too")
    for name in changed:
        setattr(patient, name, wanted[name])
    if changed:
        record(
            session,
            EventKind.CONTACT_CHANGED,
            actor,
            now,
            enrollment_id,
            detail={"fields": changed},
        )
    return changed
