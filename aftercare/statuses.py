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
    PURGED = "purged"
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
    # Patients' replies and what came of them
    OPTED_OUT = "opted_out"
    OPTED_IN = "opted_in"
    REPLIED = "replied"
    PAIN_SCORE = "pain_score"
    REPLY_HANDLED = "reply_handled"
    STAFF_NOTIFIED = "staff_notified"
    STAFF_EMAIL_FAILED = "staff_email_failed"
    # Alerts: the worklist's life of each item, and its escalation to on-call
    ALERT_OPENED = "alert_opened"
    ALERT_ACKNOWLEDGED = "alert_acknowledged"
    ALERT_RESOLVED = "alert_resolved"
    ALERT_ESCALATED = "alert_escalated"
    ALERT_ESCALATION_FAILED = "alert_escalation_failed"


class AlertKind(StrEnum):
    """Why something is on the staff's worklist."""

    URGENT_REPLY = "urgent_reply"  # a reply naming a warning sign
    REPLY = "reply"  # a question or an answer we could not read
    DELIVERY_FAILURE = "delivery_failure"  # a message that cannot reach the patient
    OPT_OUT = "opt_out"  # the patient stopped the texts: the clinic may want to call
    NO_ANSWER = "no_answer"  # a check-in that expected an answer got none in time
    PAIN_RISING = "pain_rising"  # a pain score of 7+ or a rise of 3


# Kinds that someone must see soon: escalated to on-call when nobody acknowledges them.
URGENT_ALERT_KINDS = (AlertKind.URGENT_REPLY, AlertKind.PAIN_RISING)


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"  # someone is on it
    RESOLVED = "resolved"  # dealt with, with a note saying how


class Answer(StrEnum):
    """The automatic answer a reply got, by name (its text is in aftercare.inbox)."""

    STOPPED = "stopped"
    STARTED = "started"
    HELP = "help"
    NOT_MONITORED = "not_monitored"
    REASK = "reask"  # an answer to a pain check-in that is no 0-10 score: the scale spelled out


class ChannelName(StrEnum):
    """The ways a message reaches a patient."""

    SMS = "sms"
    EMAIL = "email"
