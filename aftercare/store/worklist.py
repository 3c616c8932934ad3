"""What needs a person: the worklist's items, and marking them handled.

Four sources, each already recorded elsewhere: replies that need staff (questions, and urgent
replies of any kind), delivery failures that staff can fix (a wrong or landline number, a bounced
address, a text the carrier could not deliver), and opt-outs. Replies keep their handled mark on
the reply itself (``replies.mark_handled``, which ``aftercare inbox done`` uses too); failures and
opt-outs get a ``handled_item`` row. Every mark also writes an event with the actor and the note.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from aftercare.errors import AftercareError, NotFoundError
from aftercare.models import Enrollment, HandledItem, Message, Patient, Reply, Suppression
from aftercare.statuses import (
    EnrollmentStatus,
    EventKind,
    MessageStatus,
    ReplyKind,
    WorkItemKind,
)
from aftercare.store.events import record
from aftercare.store.receipts import SUPPRESSING_CODES

# Failures staff can act on (correct the number or address, call the patient), by error code.
FIXABLE_CODES = {
    "21211": "invalid phone number (21211)",
    "21612": "Twilio cannot reach this number (21612)",
    "21614": "the number cannot receive texts (21614)",
    "30005": "unknown number (30005)",
    "30006": "landline or unreachable number (30006)",
}
# Suppressions that are number problems, not the patient's choice: listed as failures instead.
_NUMBER_PROBLEMS = [SUPPRESSING_CODES["30005"], SUPPRESSING_CODES["30006"]]
_LIVE = (EnrollmentStatus.ACTIVE, EnrollmentStatus.PAUSED)


@dataclass(frozen=True)
class Answered:
    """The message a reply answers, or the message that failed."""

    message_id: int
    step: str
    occurrence: int
    channel: str
    sent_at: datetime | None


@dataclass(frozen=True)
class WorkItem:
    kind: WorkItemKind
    ref_id: int  # the reply, the (latest) failed message, or the suppression
    enrollment_id: int | None
    first_name: str | None  # None: a number no patient has
    timezone: str | None
    at: datetime
    why: str
    body: str | None = None  # a reply's words, verbatim (templates escape them)
    message: Answered | None = None
    count: int = 1  # failures of one enrollment on one channel are one item

    @property
    def urgent(self) -> bool:
        return self.kind == WorkItemKind.URGENT_REPLY


def open_items(
    session: Session, limit: int | None = None, enrollments: Collection[int] | None = None
) -> list[WorkItem]:
    """Everything not handled yet (of these enrollments only, if given): urgent replies first,
    then everything else oldest first."""
    only = None if enrollments is None else list(enrollments)
    items = [*_replies(session, only), *_failures(session, only), *_opt_outs(session, only)]
    items.sort(key=lambda i: (not i.urgent, i.at, i.ref_id))
    return items[:limit] if limit else items


def attention_enrollments(session: Session) -> set[int]:
    """Enrollments with at least one open item (the roster's "needs attention" filter)."""
    return {i.enrollment_id for i in open_items(session) if i.enrollment_id is not None}


def _replies(session: Session, only: list[int] | None) -> list[WorkItem]:
    # Columns, not ORM objects: building a thousand Reply objects cost more than the query.
    answered = aliased(Message)
    query = (
        select(
            Reply.id,
            Reply.enrollment_id,
            Reply.received_at,
            Reply.body,
            Reply.kind,
            Reply.urgent,
            Reply.urgent_reason,
            Reply.pain_score,
            Reply.in_reply_to,
            Patient.first_name,
            Patient.timezone,
            answered.step,
            answered.occurrence,
            answered.channel,
            answered.sent_at,
        )
        .outerjoin(Patient, Reply.patient_id == Patient.id)
        .outerjoin(answered, Reply.in_reply_to == answered.id)
        .where(
            Reply.handled_at.is_(None),
            or_(Reply.kind == ReplyKind.QUESTION, Reply.urgent.is_(True)),
        )
    )
    if only is not None:
        query = query.where(Reply.enrollment_id.in_(only))
    items = []
    for row in session.connection().execute(query):
        message = None
        if row.in_reply_to is not None:
            message = Answered(row.in_reply_to, row.step, row.occurrence, row.channel, row.sent_at)
        items.append(
            WorkItem(
                kind=WorkItemKind.URGENT_REPLY if row.urgent else WorkItemKind.REPLY,
                ref_id=row.id,
                enrollment_id=row.enrollment_id,
                first_name=row.first_name,
                timezone=row.timezone,
                at=row.received_at,
                why=_reply_why(row.urgent_reason, row.kind, row.pain_score),
                body=row.body,
                message=message,
            )
        )
    return items


def _reply_why(urgent_reason: str | None, kind: str, pain_score: int | None) -> str:
    if urgent_reason:
        # A pain score's reason says it all ("pain 8/10, up from 4"); otherwise it is the sign.
        return urgent_reason if kind == ReplyKind.PAIN else f"warning sign: {urgent_reason}"
    if kind == ReplyKind.PAIN:
        return f"pain score {pain_score}"
    return "a question for staff"


def _fixable() -> ColumnElement[bool]:
    return or_(
        Message.status == MessageStatus.UNDELIVERED,
        and_(
            Message.status == MessageStatus.FAILED,
            or_(Message.error_code.in_(FIXABLE_CODES), Message.error_code.like("SMTP 5%")),
        ),
    )


@dataclass(frozen=True)
class _Failed:
    id: int
    enrollment_id: int
    channel: str
    step: str
    occurrence: int
    status: str
    error_code: str | None
    at: datetime
    sent_at: datetime | None


def _unhandled_failures(session: Session, only: list[int] | None) -> list[_Failed]:
    handled = exists().where(
        HandledItem.kind == WorkItemKind.FAILURE, HandledItem.ref_id == Message.id
    )
    query = (
        select(
            Message.id,
            Message.enrollment_id,
            Message.channel,
            Message.step,
            Message.occurrence,
            Message.status,
            Message.error_code,
            func.coalesce(Message.updated_at, Message.due_at),
            Message.sent_at,
        )
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .where(
            Message.status.in_([MessageStatus.FAILED, MessageStatus.UNDELIVERED]),
            _fixable(),
            Enrollment.status.in_(_LIVE),
            ~handled,
        )
    )
    if only is not None:
        query = query.where(Message.enrollment_id.in_(only))
    return [_Failed(*row) for row in session.connection().execute(query)]


def _failures(session: Session, only: list[int] | None) -> list[WorkItem]:
    failed = _unhandled_failures(session, only)
    groups: dict[tuple[int, str], list[_Failed]] = {}
    for message in failed:
        groups.setdefault((message.enrollment_id, message.channel), []).append(message)
    people = _people(session, {m.enrollment_id for m in failed})
    items = []
    for (enrollment_id, _channel), messages in groups.items():
        latest = max(messages, key=lambda m: (m.at, m.id))
        name, tz = people.get(enrollment_id, (None, None))
        items.append(
            WorkItem(
                kind=WorkItemKind.FAILURE,
                ref_id=latest.id,
                enrollment_id=enrollment_id,
                first_name=name,
                timezone=tz,
                at=latest.at,
                why=failure_why(latest.error_code),
                message=Answered(
                    latest.id, latest.step, latest.occurrence, latest.channel, latest.sent_at
                ),
                count=len(messages),
            )
        )
    return items


def failure_why(code: str | None) -> str:
    if code in FIXABLE_CODES:
        return FIXABLE_CODES[code]
    if code and code.startswith("SMTP 5"):
        return f"the email address was refused ({code})"
    return f"not delivered ({code})" if code else "not delivered"


def _people(session: Session, enrollment_ids: Iterable[int]) -> dict[int, tuple[str, str]]:
    ids = list(enrollment_ids)
    if not ids:
        return {}
    query = (
        select(Enrollment.id, Patient.first_name, Patient.timezone)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(Enrollment.id.in_(ids))
    )
    return {eid: (name, tz) for eid, name, tz in session.execute(query)}


def _opt_outs(session: Session, only: list[int] | None) -> list[WorkItem]:
    handled = exists().where(
        HandledItem.kind == WorkItemKind.OPT_OUT, HandledItem.ref_id == Suppression.id
    )
    query = select(Suppression).where(~handled, Suppression.reason.notin_(_NUMBER_PROBLEMS))
    if only is not None:
        query = query.where(Suppression.address.in_(_addresses(session, only)))
    rows = session.scalars(query).all()
    if not rows:
        return []
    latest = _latest_enrollments(session, rows)
    items = []
    for row in rows:
        enrollment_id, name, tz = latest.get((row.channel, row.address), (None, None, None))
        channel = "texts" if row.channel == "sms" else "emails"
        items.append(
            WorkItem(
                kind=WorkItemKind.OPT_OUT,
                ref_id=row.id,
                enrollment_id=enrollment_id,
                first_name=name,
                timezone=tz,
                at=row.created_at,
                why=f"no more {channel}: {row.reason}",
            )
        )
    return items


def _addresses(session: Session, enrollment_ids: list[int]) -> set[str]:
    """The phones and email addresses of these enrollments' patients."""
    query = (
        select(Patient.phone, Patient.email)
        .join(Enrollment, Enrollment.patient_id == Patient.id)
        .where(Enrollment.id.in_(enrollment_ids))
    )
    return {address for row in session.execute(query) for address in row if address}


def _latest_enrollments(
    session: Session, rows: Iterable[Suppression]
) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(channel, address) -> the latest enrollment of a patient with that number or address."""
    found: dict[tuple[str, str], tuple[int, str, str]] = {}
    for channel, column in (("sms", Patient.phone), ("email", Patient.email)):
        addresses = {r.address for r in rows if r.channel == channel}
        if not addresses:
            continue
        query = (
            select(column, func.max(Enrollment.id))
            .join(Enrollment, Enrollment.patient_id == Patient.id)
            .where(column.in_(addresses))
            .group_by(column)
        )
        latest = {address: eid for address, eid in session.execute(query)}
        people = _people(session, latest.values())
        for address, enrollment_id in latest.items():
            name, tz = people[enrollment_id]
            found[(channel, str(address))] = (enrollment_id, name, tz)
    return found


def urgent_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).where(Reply.handled_at.is_(None), Reply.urgent.is_(True))
        )
        or 0
    )


def mark_handled(
    session: Session,
    kind: WorkItemKind,
    ref_id: int,
    actor: str,
    now: datetime,
    note: str | None = None,
) -> bool:
    """Close one failure or opt-out item; False if it was closed already. Replies go through
    ``replies.mark_handled``. A failure item closes every open failure of that enrollment on that
    channel (they are one item on the worklist)."""
    if kind == WorkItemKind.FAILURE:
        message = session.get(Message, ref_id)
        if message is None:
            raise NotFoundError(f"id: no message {ref_id}")
        ids = [
            m.id
            for m in _unhandled_failures(session, [message.enrollment_id])
            if m.channel == message.channel
        ]
        enrollment_id: int | None = message.enrollment_id
    elif kind == WorkItemKind.OPT_OUT:
        suppression = session.get(Suppression, ref_id)
        if suppression is None:
            raise NotFoundError(f"id: no opt-out {ref_id}")
        done = session.scalar(
            select(HandledItem.id).where(
                HandledItem.kind == kind, HandledItem.ref_id == suppression.id
            )
        )
        ids = [] if done is not None else [suppression.id]
        enrollment_id = _latest_enrollments(session, [suppression]).get(
            (suppression.channel, suppression.address), (None, "", "")
        )[0]
    else:
        raise AftercareError(f"kind: {kind} items are replies (replies.mark_handled)")
    if not ids:
        return False
    session.add_all(
        HandledItem(kind=kind, ref_id=i, handled_at=now, handled_by=actor, note=note) for i in ids
    )
    detail = {"item": kind.value, "ids": ids}
    record(session, EventKind.ITEM_HANDLED, actor, now, enrollment_id, reason=note, detail=detail)
    return True
