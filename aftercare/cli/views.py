"""Read-only views of the database as plain dicts: the ``--json`` contract and the tables."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from aftercare.models import Enrollment, Message, Reply
from aftercare.planner import PlannedMessage, zone
from aftercare.statuses import EnrollmentStatus, MessageStatus, ReplyKind
from aftercare.store import events, reports
from aftercare.store import replies as store_replies
from aftercare.store.events import EventRow
from aftercare.store.lifecycle import get_enrollment


def iso(at: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, to the second: what scripts and people both read."""
    return None if at is None else at.strftime("%Y-%m-%dT%H:%M:%SZ")


def local(at: datetime, tz: str) -> str:
    return at.astimezone(zone(tz)).strftime("%a %Y-%m-%d %H:%M %Z")


def planned_message(m: PlannedMessage, tz: str) -> dict[str, Any]:
    return {
        "step": m.step,
        "occurrence": m.occurrence,
        "channel": m.channel,
        "due_at": iso(m.due_at),
        "local_due": local(m.due_at, tz),
        "expires_at": iso(m.expires_at),
        "deferred_for_quiet_hours": m.deferred,
    }


def stored_message(m: Message, tz: str) -> dict[str, Any]:
    return {
        "id": m.id,
        "step": m.step,
        "occurrence": m.occurrence,
        "channel": m.channel,
        "due_at": iso(m.due_at),
        "local_due": local(m.due_at, tz),
        "expires_at": iso(m.expires_at),
        "status": m.status,
        "attempts": m.attempts,
        "provider_id": m.provider_id,
        "error_code": m.error_code,
        "sent_at": iso(m.sent_at),
    }


def enrollment_summary(
    enrollment: Enrollment, counts: Mapping[MessageStatus, int] | None = None
) -> dict[str, Any]:
    patient = enrollment.patient
    return {
        "id": enrollment.id,
        "status": enrollment.status,
        "procedure": enrollment.procedure,
        "first_name": patient.first_name,
        "phone": mask_phone(patient.phone),
        "timezone": patient.timezone,
        "language": patient.language,
        "channels": enrollment.channel_list,
        # None while the patient, enrolled at booking, is not discharged yet.
        "discharged_at": None if enrollment.awaiting_discharge else iso(enrollment.discharged_at),
        "procedure_at": iso(enrollment.procedure_at),
        "follow_up_at": iso(enrollment.follow_up_at),
        "audience": enrollment.audience,
        "caregiver_for": enrollment.caregiver_for,
        "external_id": patient.external_id,
        "messages": dict(counts or {}),
    }


def list_enrollments(
    session: Session, status: EnrollmentStatus | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    enrollments = reports.enrollments(session, status, limit)
    counts = reports.message_counts(session, [e.id for e in enrollments])
    return [enrollment_summary(e, counts.get(e.id, {})) for e in enrollments]


def show_enrollment(session: Session, enrollment_id: int) -> dict[str, Any]:
    enrollment = get_enrollment(session, enrollment_id)
    tz = enrollment.patient.timezone
    messages = [stored_message(m, tz) for m in enrollment.messages]
    history = events.of_enrollment(session, enrollment_id)
    summary = enrollment_summary(
        enrollment, reports.message_counts(session, [enrollment_id]).get(enrollment_id, {})
    )
    # Staff looking at one patient see the full contact details; lists stay masked.
    summary["phone"] = enrollment.patient.phone
    summary["email"] = enrollment.patient.email
    summary["status_reason"] = enrollment.status_reason
    summary["schedule_version"] = enrollment.schedule_version
    summary["message_counts"] = summary.pop("messages")
    summary["messages"] = messages
    summary["history"] = [event_view(e) for e in history]
    replies = store_replies.of_enrollment(session, enrollment_id)
    summary["pain_scores"] = [
        {"score": r.pain_score, "received_at": iso(r.received_at)}
        for r in replies
        if r.kind == ReplyKind.PAIN
    ]
    summary["replies"] = [reply_view(r) for r in replies]
    return summary


def reply_view(reply: Reply) -> dict[str, Any]:
    """A patient's reply; the body verbatim (JSON escapes it, tables show it as text)."""
    return {
        "id": reply.id,
        "received_at": iso(reply.received_at),
        "kind": reply.kind,
        "body": reply.body,
        "urgent": reply.urgent,
        "urgent_reason": reply.urgent_reason,
        "pain_score": reply.pain_score,
        "handled_at": iso(reply.handled_at),
        "handled_by": reply.handled_by,
    }


# Control characters (a patient's text could carry an escape sequence) and bidirectional
# overrides would act on the terminal instead of being read; tables show them as \x.. codes.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """Text as it was written, but harmless on a terminal (for tables, not JSON)."""
    return _UNPRINTABLE.sub(_code, text)


def _code(match: re.Match[str]) -> str:
    point = ord(match.group())
    return f"\\x{point:02x}" if point < 0x100 else f"\\u{point:04x}"


def event_view(event: EventRow) -> dict[str, Any]:
    return {
        "at": iso(event.at),
        "kind": event.kind,
        "actor": event.actor,
        "reason": event.reason,
        "message_id": event.message_id,
        "detail": event.detail,
    }


def mask_phone(phone: str) -> str:
    """``+15555550123`` -> ``+1******0123``: enough for staff to tell numbers apart."""
    if len(phone) <= 6:
        return "*" * len(phone)
    return phone[:2] + "*" * (len(phone) - 6) + phone[-4:]


def mask_email(address: str) -> str:
    name, _, domain = address.partition("@")
    return f"{name[:1]}***@{domain}" if domain else "***"
