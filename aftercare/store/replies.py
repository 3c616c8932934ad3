"""Patients' replies in the database: storing one with what it means and what it changes,
finding it again, the staff's worklist, marking replies handled.

:func:`store` runs in the inbound webhook's transaction: it stores the reply (classified by
``replies.classify``), applies an opt-out, opt-in or pain score with its event, and chooses the
answer, kept on the row, so the same MessageSid delivered again is answered the same
(:func:`replay`) and the once-a-day automatic answer is a question about rows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased

from aftercare.errors import NotFoundError
from aftercare.models import Enrollment, Message, Patient, Reply
from aftercare.replies import Classification, classify, looks_like_an_answer, pain_urgency
from aftercare.statuses import AlertKind, Answer, ChannelName, EventKind, MessageStatus, ReplyKind
from aftercare.store import alerts
from aftercare.store.events import record
from aftercare.store.suppressions import is_suppressed, lift, suppress_address

AUTO_ANSWER_EVERY = timedelta(hours=24)  # at most one "not monitored" notice per number
LANGUAGES = ("en", "es")


@dataclass(frozen=True)
class Inbound:
    sid: str  # Twilio's MessageSid
    number: str  # E.164 From
    body: str


@dataclass(frozen=True)
class ReplyOutcome:
    reply_id: int
    kind: ReplyKind
    urgent: bool
    answer: Answer | None
    language: str


@dataclass(frozen=True)
class _Sender:
    patient_id: int
    enrollment_id: int  # the patient's latest enrollment
    language: str


def store(
    session: Session,
    inbound: Inbound,
    now: datetime,
    escalate_after: timedelta | None = None,
    expecting_scores: Collection[tuple[str, str]] = (),
) -> ReplyOutcome | None:
    """The new reply's outcome, or None if this MessageSid is already stored. A reply staff
    must see opens its alert (urgent ones due for escalation ``escalate_after`` from now).

    ``expecting_scores``: the (procedure, step) pairs whose texts ask for a 0-10 score. An
    answer to one that is not a score ("12", "a lot") is asked again once with the scale spelled
    out; a second one goes to the worklist."""
    if session.scalar(select(Reply.id).where(Reply.provider_id == inbound.sid)) is not None:
        return None
    sender = _sender(session, inbound.number)
    found = classify(inbound.body)
    was_opted_out = is_suppressed(session, ChannelName.SMS, inbound.number)
    reply = _new_reply(session, inbound, sender, found, was_opted_out, now)
    session.add(reply)
    session.flush()  # a duplicate MessageSid fails here, before anything else is written
    _apply(session, reply, found, now)
    reask = _unreadable_score(session, reply, expecting_scores)
    if reask and not _asked_again(session, reply):
        reply.answer = Answer.REASK
    else:
        reply.answer = _choose_answer(session, reply, now)
    language = sender.language if sender else "en"
    detail = {
        "reply_id": reply.id,
        "kind": reply.kind,
        "urgent": reply.urgent,
        "answer": reply.answer,
        "language": found.language,  # guessed from the words; answers use the patient's
    }
    record(session, EventKind.REPLIED, "patient", now, reply.enrollment_id, detail=detail)
    worklist_item = None if reply.answer == Answer.REASK else _alert(reply, reask)
    if worklist_item is not None:
        alerts.open_alert(session, worklist_item, "patient", now, escalate_after)
    return ReplyOutcome(reply.id, reply.kind, reply.urgent, reply.answer, language)


def _new_reply(
    session: Session,
    inbound: Inbound,
    sender: _Sender | None,
    found: Classification,
    was_opted_out: bool,
    now: datetime,
) -> Reply:
    # YES is Twilio's opt-in keyword too: for a number that opted out it means START (Twilio
    # lifts its own block on YES, so ours must follow); from anyone else it is just an answer.
    kind = ReplyKind.START if found.yes and was_opted_out else found.kind
    reason = found.urgent_reason
    if kind == ReplyKind.PAIN and found.pain_score is not None:
        previous = _previous_score(session, sender.enrollment_id) if sender else None
        reason = pain_urgency(found.pain_score, previous)
    return Reply(
        provider_id=inbound.sid,
        received_at=now,
        from_number=inbound.number,
        patient_id=sender.patient_id if sender else None,
        enrollment_id=sender.enrollment_id if sender else None,
        in_reply_to=_last_sent(session, inbound.number, now),
        body=inbound.body,
        kind=kind,
        urgent=reason is not None,
        urgent_reason=reason[:200] if reason else None,
        pain_score=found.pain_score if kind == ReplyKind.PAIN else None,
    )


def _sender(session: Session, number: str) -> _Sender | None:
    """The patient of the most recent enrollment with this phone number, if any."""
    row = session.execute(
        select(Patient.id, Enrollment.id, Patient.language)
        .join(Enrollment, Enrollment.patient_id == Patient.id)
        .where(Patient.phone == number)
        .order_by(Enrollment.created_at.desc(), Enrollment.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    patient_id, enrollment_id, language = row
    # Serialise concurrent replies of one patient (PostgreSQL), so two questions at once cannot
    # both get the once-a-day automatic answer. SQLite's BEGIN IMMEDIATE already serialises.
    session.execute(select(Patient.id).where(Patient.id == patient_id).with_for_update())
    return _Sender(patient_id, enrollment_id, language if language in LANGUAGES else "en")


def _last_sent(session: Session, number: str, now: datetime) -> int | None:
    """The last SMS that reached this number before now: what the reply most likely answers."""
    return session.scalar(
        select(Message.id)
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(
            Patient.phone == number,
            Message.channel == ChannelName.SMS,
            Message.status.in_([MessageStatus.SENT, MessageStatus.DELIVERED]),
            Message.sent_at <= now,
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    )


def _previous_score(session: Session, enrollment_id: int) -> int | None:
    return session.scalar(
        select(Reply.pain_score)
        .where(Reply.enrollment_id == enrollment_id, Reply.kind == ReplyKind.PAIN)
        .order_by(Reply.received_at.desc(), Reply.id.desc())
        .limit(1)
    )


def _apply(session: Session, reply: Reply, found: Classification, now: datetime) -> None:
    """Opt-out, opt-in or a pain score: the change and its event."""
    if reply.kind == ReplyKind.STOP:
        why = "patient replied STOP" if found.keyword else "patient asked to stop (free text)"
        count = suppress_address(session, ChannelName.SMS, reply.from_number, why, "patient", now)
        detail = {"channel": ChannelName.SMS, "reply_id": reply.id, "messages": count}
        record(
            session,
            EventKind.OPTED_OUT,
            "patient",
            now,
            reply.enrollment_id,
            reason=why,
            detail=detail,
        )
    elif reply.kind == ReplyKind.START:
        # Only future messages go out again: those already marked suppressed stay unsent.
        lifted = lift(session, ChannelName.SMS, reply.from_number)
        detail = {"channel": ChannelName.SMS, "reply_id": reply.id, "lifted": lifted}
        record(session, EventKind.OPTED_IN, "patient", now, reply.enrollment_id, detail=detail)
    elif reply.kind == ReplyKind.PAIN:
        detail = {"reply_id": reply.id, "score": reply.pain_score, "urgent": reply.urgent}
        record(
            session,
            EventKind.PAIN_SCORE,
            "patient",
            now,
            reply.enrollment_id,
            reason=reply.urgent_reason,
            detail=detail,
        )


def _unreadable_score(
    session: Session, reply: Reply, expecting_scores: Collection[tuple[str, str]]
) -> bool:
    """Whether the reply tries to answer a pain check-in but is no 0-10 score."""
    if reply.kind != ReplyKind.QUESTION or reply.urgent or reply.in_reply_to is None:
        return False
    if not looks_like_an_answer(reply.body):
        return False
    asked = session.execute(
        select(Enrollment.procedure, Message.step)
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .where(Message.id == reply.in_reply_to)
    ).first()
    return asked is not None and (asked.procedure, asked.step) in expecting_scores


def _asked_again(session: Session, reply: Reply) -> bool:
    """Whether the check-in this reply answers already got its one re-ask."""
    earlier = select(Reply.id).where(
        Reply.in_reply_to == reply.in_reply_to,
        Reply.id != reply.id,
        Reply.answer == Answer.REASK,
    )
    return session.scalar(earlier.limit(1)) is not None


def _alert(reply: Reply, unreadable: bool = False) -> alerts.NewAlert | None:
    """The worklist item a reply opens, if any: STOP (the clinic may want to call), an urgent
    or rising pain score, another urgent reply, a question. START, HELP and routine scores
    need nobody."""
    reason: str | None
    if reply.kind == ReplyKind.STOP:
        kind, reason = AlertKind.OPT_OUT, "stopped the texts"
    elif reply.kind == ReplyKind.PAIN and reply.urgent:
        kind, reason = AlertKind.PAIN_RISING, reply.urgent_reason
    elif reply.urgent:
        kind, reason = AlertKind.URGENT_REPLY, reply.urgent_reason
    elif reply.kind == ReplyKind.QUESTION:
        kind = AlertKind.REPLY
        reason = "not a 0-10 pain score, after asking again" if unreadable else None
    else:
        return None
    return alerts.NewAlert(
        kind,
        f"reply:{reply.id}",
        reason,
        reply.patient_id,
        reply.enrollment_id,
        reply.in_reply_to,
        reply.id,
    )


def _choose_answer(session: Session, reply: Reply, now: datetime) -> Answer | None:
    fixed = {
        ReplyKind.STOP: Answer.STOPPED,
        ReplyKind.START: Answer.STARTED,
        ReplyKind.HELP: Answer.HELP,
    }
    if reply.kind in fixed:
        return fixed[ReplyKind(reply.kind)]
    if reply.kind == ReplyKind.PAIN and not reply.urgent:
        return None  # a routine score needs no answer
    # Questions and urgent scores: point to the phone, once a day, and never to a number that
    # opted out (it asked for no more texts; Twilio would refuse the answer anyway).
    if is_suppressed(session, ChannelName.SMS, reply.from_number) or _answered_lately(
        session, reply, now
    ):
        return None
    return Answer.NOT_MONITORED


def _answered_lately(session: Session, reply: Reply, now: datetime) -> bool:
    """Whether this number got the "not monitored" answer in the last AUTO_ANSWER_EVERY."""
    earlier = select(Reply.id).where(
        Reply.from_number == reply.from_number,
        Reply.received_at > now - AUTO_ANSWER_EVERY,
        Reply.id != reply.id,
        Reply.answer == Answer.NOT_MONITORED,
    )
    return session.scalar(earlier.limit(1)) is not None


def replay(session: Session, sid: str) -> ReplyOutcome | None:
    """The outcome of a reply stored before (the same MessageSid delivered again)."""
    reply = session.scalar(select(Reply).where(Reply.provider_id == sid))
    if reply is None:
        return None
    language = session.scalar(select(Patient.language).where(Patient.id == reply.patient_id))
    return ReplyOutcome(
        reply.id,
        ReplyKind(reply.kind),
        reply.urgent,
        reply.answer,
        language if language in LANGUAGES else "en",
    )


# --- staff ------------------------------------------------------------------------------------


def mark_handled(
    session: Session, reply_id: int, actor: str, now: datetime, note: str | None = None
) -> bool:
    """Mark a reply as dealt with, with staff's note (what they did) in the event; False if it
    already was (nothing changes then)."""
    reply = session.get(Reply, reply_id, with_for_update=True)
    if reply is None:
        raise NotFoundError(f"id: no reply {reply_id}")
    if reply.handled_at is not None:
        return False
    reply.handled_at, reply.handled_by = now, actor
    record(
        session,
        EventKind.REPLY_HANDLED,
        actor,
        now,
        reply.enrollment_id,
        reason=note,
        detail={"reply_id": reply_id},
    )
    return True


@dataclass(frozen=True)
class WorklistRow:
    """A reply that needs staff, with who sent it and what it answers."""

    reply: Reply
    first_name: str | None  # None: a number no patient has
    phone: str | None
    step: str | None  # of the message it answers, if any
    occurrence: int | None


def needing_staff(
    session: Session, include_handled: bool = False, limit: int | None = None
) -> list[WorklistRow]:
    """Questions and urgent replies (of any kind), urgent first, then newest first."""
    answered = aliased(Message)
    query = (
        select(Reply, Patient.first_name, Patient.phone, answered.step, answered.occurrence)
        .outerjoin(Patient, Reply.patient_id == Patient.id)
        .outerjoin(answered, Reply.in_reply_to == answered.id)
        .where(or_(Reply.kind == ReplyKind.QUESTION, Reply.urgent.is_(True)))
        .order_by(Reply.urgent.desc(), Reply.received_at.desc(), Reply.id.desc())
    )
    if not include_handled:
        query = query.where(Reply.handled_at.is_(None))
    if limit:
        query = query.limit(limit)
    return [WorklistRow(*row) for row in session.execute(query)]


def of_enrollment(session: Session, enrollment_id: int) -> list[Reply]:
    query = (
        select(Reply)
        .where(Reply.enrollment_id == enrollment_id)
        .order_by(Reply.received_at, Reply.id)
    )
    return list(session.scalars(query))


def with_patient(session: Session, reply_id: int) -> tuple[Reply, Patient | None] | None:
    """A reply and the patient it came from (None for a number no patient has)."""
    reply = session.get(Reply, reply_id)
    if reply is None:
        return None
    return reply, session.get(Patient, reply.patient_id) if reply.patient_id else None


def enrollment_of(session: Session, reply_id: int) -> int | None:
    return session.scalar(select(Reply.enrollment_id).where(Reply.id == reply_id))
