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
    # Hospital systems (HL7 v2, FHIR) and the REST API
    HL7_RECEIVED = "hl7_received"
    HL7_RESENT = "hl7_resent"
    HL7_CONFLICT = "hl7_conflict"
    HL7_REJECTED = "hl7_rejected"
    FHIR_RECEIVED = "fhir_received"
    API_REQUEST = "api_request"
    APIKEY_CREATED = "apikey_created"
    APIKEY_REVOKED = "apikey_revoked"
    PATIENTS_MERGED = "patients_merged"
    # Alerts: the worklist's life of each item, and its escalation to on-call
    ALERT_OPENED = "alert_opened"
    ALERT_ACKNOWLEDGED = "alert_acknowledged"
    ALERT_RESOLVED = "alert_resolved"
    ALERT_ESCALATED = "alert_escalated"
    ALERT_ESCALATION_FAILED = "alert_escalation_failed"
    # Staff accounts and the console (aftercare.accounts)
    STAFF_ADDED = "staff_added"
    STAFF_DISABLED = "staff_disabled"
    STAFF_ENABLED = "staff_enabled"
    ROLE_CHANGED = "role_changed"
    PASSWORD_RESET = "password_reset"
    TWO_FACTOR_ON = "two_factor_on"
    TWO_FACTOR_OFF = "two_factor_off"
    TWO_FACTOR_REQUIRED = "two_factor_required"
    SIGNED_IN = "signed_in"
    SIGNIN_FAILED = "signin_failed"
    SIGNED_OUT = "signed_out"
    FORBIDDEN = "forbidden"  # a signed-in account tried what its role may not do
    VIEWED = "viewed"  # a patient's record (or a list of them) was looked at
    # The console's worklist and roster
    ITEM_HANDLED = "item_handled"  # a delivery failure or an opt-out dealt with
    ROSTER_EXPORTED = "roster_exported"


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


class IntakeOutcome(StrEnum):
    """What a message from a hospital system (HL7 v2, FHIR, the API) came to."""

    ENROLLED = "enrolled"
    ALREADY_ENROLLED = "already_enrolled"  # the same patient, procedure and discharge time
    IGNORED = "ignored"  # a procedure the clinic does not follow, a visit it never enrolled
    CANCELLED = "cancelled"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    MERGED = "merged"
    ERROR = "error"  # a field is wrong: answered AE, nothing written
    REJECTED = "rejected"  # not a message that can be processed: answered AR
    RESENT = "resent"  # a control id (or Encounter) seen before: the stored answer again
    CONFLICT = "conflict"  # a control id reused for a different message
    UNAVAILABLE = "unavailable"  # the database could not be reached: the sender resends


class ChannelName(StrEnum):
    """The ways a message reaches a patient."""

    SMS = "sms"
    EMAIL = "email"


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
