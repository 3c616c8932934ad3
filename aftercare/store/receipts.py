"""Delivery receipts (Twilio status callbacks): they only ever move a message forward.

A receipt names the message by Twilio's SID, which the dispatcher records with the rest of its
batch once every send in the batch has returned. Twilio can report on a text before that (a
landline is known within a second), so the status callback URL also carries our message id: a
receipt for a message still ``sending`` without a SID is parked, and applied when the dispatcher
records the SID (:func:`apply_parked`).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from aftercare.models import EarlyReceipt, Enrollment, Message, Patient
from aftercare.statuses import AlertKind, ChannelName, EventKind, MessageStatus
from aftercare.store import alerts
from aftercare.store.events import record
from aftercare.store.suppressions import suppress_address

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
PARKED = "parked"
SID_MAX = Message.provider_id.type.length or 64
CODE_MAX = Message.error_code.type.length or 32

_message = cast(Table, Message.__table__)


def _forward_statement(new: MessageStatus) -> Any:
    """The forward-only rule in the WHERE of one UPDATE: atomic under concurrent callbacks
    (on PostgreSQL too, without a read first), and built once, not for every callback."""
    below = [status for status, rank in _RANK.items() if rank < _RANK[new]]
    return (
        update(_message)
        # Receipts are Twilio's, so about texts only: an email's Message-ID posted as a SID
        # must not mark that email failed.
        .where(
            _message.c.provider_id == bindparam("sid"),
            _message.c.channel == ChannelName.SMS,
            _message.c.status.in_(below),
        )
        .values(
            status=new,
            updated_at=bindparam("now", type_=_message.c.updated_at.type),
            # A receipt without a code keeps the code an earlier receipt gave.
            error_code=func.coalesce(
                bindparam("code", type_=_message.c.error_code.type), _message.c.error_code
            ),
        )
        .returning(_message.c.id, _message.c.enrollment_id)
    )


_FORWARD = {status: _forward_statement(status) for status in set(_TWILIO.values())}
_IN_FLIGHT = (
    select(_message.c.id)
    .where(
        _message.c.id == bindparam("id"),
        _message.c.channel == ChannelName.SMS,
        _message.c.status == MessageStatus.SENDING,
        _message.c.provider_id.is_(None),
    )
    .with_for_update()
)


def apply_status(
    session: Session,
    sid: str,
    twilio_status: str,
    error_code: str | None,
    now: datetime,
    message_id: int | None = None,
) -> str | None:
    """Apply one callback; returns the message's new status, :data:`PARKED` for a receipt
    that came before the dispatcher recorded the SID, or None if nothing changed (unknown SID,
    a status that says nothing new, or one that would move the message backwards)."""
    twilio_status = twilio_status.strip().lower()
    new = _TWILIO.get(twilio_status)
    if new is None or not sid or len(sid) > SID_MAX:  # no message of ours has such a SID
        return None
    # Twilio's codes are five digits; anything longer is stored cut to fit its column.
    error_code = (error_code.strip()[:CODE_MAX] or None) if error_code else None
    if _move(session, sid, new, twilio_status, error_code, now):
        return str(new)
    if message_id is None:
        return None
    # On PostgreSQL this waits for a dispatcher recording this very row, then sees its SID.
    if session.scalar(_IN_FLIGHT, {"id": message_id}) is not None:
        session.execute(
            insert(EarlyReceipt).values(
                message_id=message_id,
                provider_id=sid,
                twilio_status=twilio_status,
                error_code=error_code,
                received_at=now,
            )
        )
        return PARKED
    # The dispatcher recorded the SID while we waited for the row: an ordinary receipt now.
    return str(new) if _move(session, sid, new, twilio_status, error_code, now) else None


def apply_parked(session: Session, message_ids: Collection[int], now: datetime) -> int:
    """Apply the receipts that arrived for these messages before their SIDs were recorded (call
    it in the transaction that records them); returns how many changed a message."""
    if not message_ids:
        return 0
    parked = session.scalars(
        select(EarlyReceipt)
        .where(EarlyReceipt.message_id.in_(list(message_ids)))
        .order_by(EarlyReceipt.id)
    ).all()
    if not parked:
        return 0
    applied = sum(
        apply_status(session, r.provider_id, r.twilio_status, r.error_code, now) is not None
        for r in parked
    )
    session.execute(delete(EarlyReceipt).where(EarlyReceipt.id.in_([r.id for r in parked])))
    return applied


def _move(
    session: Session,
    sid: str,
    new: MessageStatus,
    twilio_status: str,
    error_code: str | None,
    now: datetime,
) -> bool:
    moved = session.execute(_FORWARD[new], {"sid": sid, "now": now, "code": error_code}).first()
    if moved is None:
        return False
    record(
        session,
        EventKind(new),
        "provider",
        now,
        moved.enrollment_id,
        moved.id,
        reason=f"error {error_code}" if error_code else None,
        detail={"twilio_status": twilio_status},
    )
    if new in (MessageStatus.FAILED, MessageStatus.UNDELIVERED):
        reason = f"{new} (error {error_code})" if error_code else str(new)
        cause = f"message:{moved.id}"
        failure = alerts.message_alert(AlertKind.DELIVERY_FAILURE, cause, session, moved.id, reason)
        alerts.open_alert(session, failure, "provider", now)
    if error_code in SUPPRESSING_CODES:
        phone = session.scalar(
            select(Patient.phone)
            .join(Enrollment, Enrollment.patient_id == Patient.id)
            .where(Enrollment.id == moved.enrollment_id)
        )
        if phone is not None:
            suppress_address(
                session, ChannelName.SMS, phone, SUPPRESSING_CODES[error_code], "provider", now
            )
    return True
