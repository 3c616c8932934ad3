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
