"""Delivery receipts (Twilio status callbacks): they only ever move a message forward."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aftercare.claims import suppress_address
from aftercare.lifecycle import record
from aftercare.models import Enrollment, Message, MessageStatus, Patient

# How far along each status is; a callback never moves a message to a lower rank, and a
# message at the last rank (delivered, undelivered, failed) stays where it is.
_RANK = {
    MessageStatus.SENDING: 1,
    MessageStatus.SENT: 2,
    MessageStatus.DELIVERED: 3,
    MessageStatus.UNDELIVERED: 3,
    MessageStatus.FAILED: 3,
}
# Twilio's MessageStatus values -> ours. queued/accepted/scheduled/sending say nothing new.
_TWILIO = {
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "read": MessageStatus.DELIVERED,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
}
# Error codes that mean this number will never take our texts: the same suppression as an
# opt-out (21610 unsubscribed, 30005 unknown handset, 30006 landline or unreachable carrier).
SUPPRESSING_CODES = {
    "21610": "opted out (21610)",
    "30005": "unknown destination (30005)",
    "30006": "landline or unreachable (30006)",
}


def apply_status(
    session: Session, sid: str, twilio_status: str, error_code: str | None, now: datetime
) -> str | None:
    """Apply one callback; returns the message's new status, or None if nothing changed
    (unknown SID, a status that says nothing new, or one that would move it backwards)."""
    new = _TWILIO.get(twilio_status.strip().lower())
    row = session.execute(
        select(Message, Patient.phone)
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(Message.provider_id == sid)
        .with_for_update(of=Message)
    ).first()
    if row is None or new is None:
        return None
    message, phone = row
    current = _RANK.get(MessageStatus(message.status), 0)
    if current >= 3 or _RANK[new] <= current:
        return None
    message.status = new
    message.updated_at = now
    if error_code:
        message.error_code = error_code
    record(
        session,
        str(new),
        "provider",
        now,
        message.enrollment_id,
        message.id,
        reason=f"error {error_code}" if error_code else None,
        detail={"twilio_status": twilio_status},
    )
    if error_code in SUPPRESSING_CODES:
        suppress_address(session, "sms", phone, SUPPRESSING_CODES[error_code], "provider", now)
    return str(new)
