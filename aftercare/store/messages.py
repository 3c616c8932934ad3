"""One stored message with what rendering it needs: the console shows its words on demand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare.models import Enrollment, Message, Patient
from aftercare.render import Recipient


@dataclass(frozen=True)
class ToRender:
    procedure: str
    step: str
    channel: str
    due_at: datetime
    recipient: Recipient


def to_render(session: Session, enrollment_id: int, message_id: int) -> ToRender | None:
    """The message ``message_id`` of that enrollment, or None if it has no such message."""
    row = session.execute(
        select(
            Enrollment.procedure,
            Message.step,
            Message.channel,
            Message.due_at,
            Patient.first_name,
            Patient.timezone,
            Patient.language,
            Enrollment.discharged_at,
        )
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(Message.id == message_id, Message.enrollment_id == enrollment_id)
    ).first()
    if row is None:
        return None
    procedure, step, channel, due_at, first_name, tz, language, discharged_at = row
    return ToRender(
        procedure, step, channel, due_at, Recipient(first_name, tz, language, discharged_at)
    )
