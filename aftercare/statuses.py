"""The states of enrollments and messages, the kinds of replies and the roles of staff accounts:
plain enums, no database."""

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


class StaffRole(StrEnum):
    """What a console account may do; each role may also do everything of the roles before it."""

    VIEWER = "viewer"  # reads
    NURSE = "nurse"  # also enrolls, imports, edits, pauses, resumes, cancels, handles replies
    ADMIN = "admin"  # also manages staff accounts


class WorkItemKind(StrEnum):
    """What a worklist item is about (urgent replies are listed first)."""

    URGENT_REPLY = "urgent_reply"
    REPLY = "reply"
    FAILURE = "failure"
    OPT_OUT = "opt_out"
