"""Urgent patient replies emailed to staff (AFTERCARE_STAFF_EMAIL), in the background.

A thread of its own per email: an SMTP relay that hangs must not hold the inbound webhook past
Twilio's 15 s timeout, and a failure never loses the reply (it is in ``aftercare inbox``). The
outcome is an event ("staff_notified" or "staff_email_failed"). The email holds the reply (staff
need it); its subject, shown on lock screens, holds neither name nor symptom; logs hold ids only.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from aftercare.app import App
from aftercare.channels.base import ChannelError, Outgoing
from aftercare.channels.email import EmailChannel
from aftercare.config import Settings
from aftercare.db import transaction
from aftercare.errors import AftercareError
from aftercare.statuses import ChannelName, EventKind
from aftercare.store import replies
from aftercare.store.events import record

log = logging.getLogger("aftercare.alerts")

_pending: set[threading.Thread] = set()
_pending_lock = threading.Lock()


def notify_staff(app: App, reply_id: int) -> None:
    """Email an urgent reply to AFTERCARE_STAFF_EMAIL (when it and SMTP are set), in the
    background; the outcome is recorded as a "staff_notified" or "staff_email_failed" event."""
    settings = app.settings
    if not (settings.staff_email and settings.smtp_url and settings.email_from):
        return
    thread = threading.Thread(target=_email_staff, args=(app, reply_id), name="staff-email")
    with _pending_lock:
        _pending.add(thread)
    thread.start()


def wait_for_staff_emails(timeout: float = 30.0) -> None:
    """Block until the staff emails under way are sent or failed (shutdown, tests)."""
    with _pending_lock:
        threads = list(_pending)
    for thread in threads:
        thread.join(timeout)


def staff_email(session: Session, reply_id: int, settings: Settings) -> Outgoing:
    found = replies.with_patient(session, reply_id)
    if found is None or not settings.staff_email:
        raise LookupError("no such reply or no staff email")
    reply, patient = found
    who = (
        f"patient {patient.first_name}, enrollment {reply.enrollment_id}"
        if patient
        else f"an unknown number ({reply.from_number})"
    )
    text = (
        f"Urgent reply from {who}: {reply.body}\n\n"
        f"Why it is urgent: {reply.urgent_reason}\n"
        f"Received: {reply.received_at:%Y-%m-%d %H:%M} UTC\n\n"
        "See all replies with 'aftercare inbox'; "
        f"once dealt with: 'aftercare inbox done {reply.id}'."
    )
    return Outgoing(
        # Negative: outbox rows are positive, so the Message-ID never collides with one.
        message_id=-reply.id,
        channel=ChannelName.EMAIL,
        to=settings.staff_email,
        text=text,
        language="en",
        # The subject shows on lock screens: no name, no symptom.
        subject=f"Urgent patient reply #{reply.id}",
    )


def _email_staff(app: App, reply_id: int) -> None:
    try:
        failure: str | None = None
        try:
            with app.sessions() as session:
                outgoing = staff_email(session, reply_id, app.settings)
            channel = EmailChannel(app.settings)
            try:
                channel.send(outgoing)
            finally:
                channel.close()
        except (ChannelError, AftercareError) as exc:  # their texts never hold addresses
            failure = str(exc)
        except Exception as exc:
            failure = type(exc).__name__
        _record_notification(app, reply_id, failure)
    finally:
        with _pending_lock:
            _pending.discard(threading.current_thread())


def _record_notification(app: App, reply_id: int, failure: str | None) -> None:
    if failure:
        log.warning("staff email for reply id=%s failed: %s", reply_id, failure)
    kind = EventKind.STAFF_EMAIL_FAILED if failure else EventKind.STAFF_NOTIFIED
    try:
        with transaction(app.sessions) as session:
            enrollment_id = replies.enrollment_of(session, reply_id)
            detail = {"reply_id": reply_id, "channel": ChannelName.EMAIL}
            now = app.clock.now()
            record(session, kind, "aftercare", now, enrollment_id, reason=failure, detail=detail)
    except SQLAlchemyError as exc:
        log.error("cannot record %s for reply id=%s: %s", kind, reply_id, type(exc).__name__)
