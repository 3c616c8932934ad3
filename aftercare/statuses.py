"""The states of enrollments and messages, and the kinds of replies: plain enums, no database."""

from __future__ import annotations

from enum import StrEnum


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class MessageStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    PAUSED = "paused"
    CAPPED = "capped"  # over the per-number SMS cap with no allowed slot before it expired


# Statuses a message can still leave on its own; everything else is history.
OPEN_STATUSES = (MessageStatus.PENDING, MessageStatus.PAUSED)


class ReplyKind(StrEnum):
    STOP = "stop"  # STOP and its synonyms, or plain words that revoke consent
    START = "start"  # START / UNSTOP: opted back in
    HELP = "help"
    PAIN = "pain"  # a 0-10 answer to the symptom check-in
    QUESTION = "question"  # anything else: for staff


class EventKind(StrEnum):
    """What an event of the audit log records."""

    # An enrollment's life, by staff
    ENROLLED = "enrolled"
    PLANNED = "planned"
    PAUSED = "paused"
    RESUMED = "resumed"
    CANCELLED = "cancelled"
    RESCHEDULED = "rescheduled"
    DISCHARGED = "discharged"  # the discharge of a patient enrolled when the procedure was booked
    PURGED = "purged"
    CONTACT_EDITED = "contact_edited"  # aftercare patients edit: which fields, never the values
    # A message's life, by dispatchers and the provider
    CLAIMED = "claimed"
    RECONCILING = "reconciling"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    RETRY = "retry"
    EXPIRED = "expired"
    SUPPRESSED = "suppressed"
    DEFERRED = "deferred"  # held back by the per-number SMS cap until an allowed time
    CAPPED = "capped"  # held back by the cap with no allowed time before it expired
    # Patients' replies and what came of them
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    REPLIED = "replied"
    PAIN_SCORE = "pain_score"
    REPLY_HANDLED = "reply_handled"
    STAFF_NOTIFIED = "staff_notified"
    STAFF_EMAIL_FAILED = "staff_email_failed"


class Answer(StrEnum):
    """The automatic answer a reply got, by name (its text is in aftercare.inbox)."""

    STOPPED = "stopped"
    STARTED = "started"
    HELP = "help"
    NOT_MONITORED = "not_monitored"
    URGENT = "urgent"  # a warning sign or a high pain score: call now, or 911


class ChannelName(StrEnum):
    """The ways a message reaches a patient."""

    SMS = "sms"
    EMAIL = "email"


class Audience(StrEnum):
    """Who a step goes to: the patient, or the caregiver (or driver) staff enrolled beside them."""

    PATIENT = "patient"
    CAREGIVER = "caregiver"
