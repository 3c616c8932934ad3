"""Patients' replies: store each one, act on opt-outs, answer the patient, alert staff.

:func:`receive` is the inbound webhook's unit of work. One transaction stores the reply with what
it means (``replies.classify``), applies an opt-out or opt-in, records the events and chooses the
answer; the answer's name goes into the "replied" event, so the same MessageSid delivered again is
answered the same without being stored twice. Urgent replies are emailed to staff after the
commit (``alerts``).
Logs carry ids, kinds and codes only: never the number, the name or the body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aftercare.alerts import notify_staff
from aftercare.app import App
from aftercare.config import Settings
from aftercare.db import transaction
from aftercare.errors import AftercareError, NotFoundError
from aftercare.lifecycle import record
from aftercare.models import Enrollment, Event, Message, Patient, Reply, Suppression
from aftercare.replies import Classification, classify, pain_urgency
from aftercare.statuses import MessageStatus, ReplyKind
from aftercare.store.claims import suppress_address

log = logging.getLogger("aftercare.inbox")

AUTO_ANSWER_EVERY = timedelta(hours=24)  # at most one of each automatic answer per number
LANGUAGES = ("en", "es")

# What we answer, by name (the name is what the "replied" event keeps).
#
# Twilio's Advanced Opt-Out may answer the exact keywords STOP/START/HELP itself as well. We keep
# our answers for the keywords too: free-text revocations ("stop texting me") are ours alone to
# confirm, a sender without Advanced Opt-Out gets no other confirmation, and one answer for every
# way of saying stop does not depend on how the Twilio account is configured. To avoid a double
# confirmation, switch off Twilio's keyword *replies* (keep its opt-out list).
ANSWERS = {
    "stopped": {
        "en": "You will get no more texts from {clinic}. Reply START to resume.",
        "es": "No recibirá más mensajes de {clinic}. Responda START para volver a recibirlos.",
    },
    "started": {
        "en": "{clinic}: you will get your aftercare texts again. Reply STOP to opt out.",
        "es": "{clinic}: volverá a recibir sus mensajes de cuidados. STOP para cancelar.",
    },
    "help": {
        "en": "{clinic} aftercare reminders. Questions: call {phone}. "
        "In an emergency call 911. Reply STOP to opt out.",
        "es": "Recordatorios de cuidados de {clinic}. Dudas: llame al {phone}. "
        "En una emergencia llame al 911. STOP para cancelar.",
    },
    # A reply naming a warning sign, or a high pain score: what to do now, the guide's signs
    # for the clinic and the ones for 911 (never "not monitored", which reads as "wait").
    "urgent": {
        "en": "{clinic}: please call us now at {phone}. For new leg weakness, loss of bladder "
        "or bowel control, chest pain or trouble breathing, call 911.",
        "es": "{clinic}: llámenos ahora al {phone}. Si tiene debilidad nueva en las piernas, "
        "pérdida del control de la vejiga o del intestino, dolor en el pecho o le falta el "
        "aire, llame al 911.",
    },
    "not_monitored": {
        "en": "{clinic}: this number is not monitored for urgent needs. "
        "Please call us at {phone}, or 911 in an emergency.",
        "es": "{clinic}: este número no se revisa para urgencias. "
        "Llámenos al {phone}, o al 911 en una emergencia.",
    },
}


@dataclass(frozen=True)
class Inbound:
    sid: str  # Twilio's MessageSid
    number: str  # E.164 From
    body: str


@dataclass(frozen=True)
class Outcome:
    reply_id: int
    kind: str
    urgent: bool
    answer: str | None  # a key of ANSWERS
    language: str


@dataclass(frozen=True)
class _Sender:
    patient_id: int
    enrollment_id: int  # the patient's latest enrollment
    language: str


def receive(app: App, form: Mapping[str, str]) -> str | None:
    """Store one inbound SMS and act on it; returns the text to answer with, or None."""
    inbound = _inbound(form)
    if inbound is None:
        log.warning("inbound SMS without MessageSid or From: ignored")
        return None
    try:
        with transaction(app.sessions) as session:
            outcome = _store(session, inbound, app.clock.now())
    except IntegrityError:  # a concurrent delivery of the same MessageSid committed first
        outcome = None
    if outcome is None:
        with app.sessions() as session:
            outcome = _replay(session, inbound.sid)
        if outcome is None:
            raise AftercareError("inbound reply could neither be stored nor found")
        log.info("inbound reply id=%s delivered again: answered as before", outcome.reply_id)
    else:
        log.info(
            "inbound reply id=%s kind=%s urgent=%s answer=%s",
            outcome.reply_id,
            outcome.kind,
            outcome.urgent,
            outcome.answer or "none",
        )
        if outcome.urgent:
            notify_staff(app, outcome.reply_id)
    return answer_text(outcome, app.settings)


def answer_text(outcome: Outcome, settings: Settings) -> str | None:
    if outcome.answer is None:
        return None
    template = ANSWERS[outcome.answer][outcome.language]
    return template.format(clinic=settings.clinic_name, phone=settings.clinic_phone)


def _inbound(form: Mapping[str, str]) -> Inbound | None:
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    number = (form.get("From") or "").strip()
    if not sid or not number or len(sid) > 64 or len(number) > 20:
        return None
    return Inbound(sid, number, form.get("Body") or "")


# --- storing ----------------------------------------------------------------------------------


def _store(session: Session, inbound: Inbound, now: datetime) -> Outcome | None:
    """The new reply's outcome, or None if this MessageSid is already stored."""
    if session.scalar(select(Reply.id).where(Reply.provider_id == inbound.sid)) is not None:
        return None
    sender = _sender(session, inbound.number)
    found = classify(inbound.body)
    was_opted_out = _opted_out(session, inbound.number)
    reply = _new_reply(session, inbound, sender, found, was_opted_out, now)
    session.add(reply)
    session.flush()  # a duplicate MessageSid fails here, before anything else is written
    _apply(session, reply, found, now)
    answer = _choose_answer(session, reply, now)
    language = sender.language if sender else "en"
    detail = {
        "reply_id": reply.id,
        "kind": reply.kind,
        "urgent": reply.urgent,
        "answer": answer,
        "language": found.language,  # guessed from the words; answers use the patient's
    }
    record(session, "replied", "patient", now, reply.enrollment_id, detail=detail)
    return Outcome(reply.id, reply.kind, reply.urgent, answer, language)


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


def _opted_out(session: Session, number: str) -> bool:
    query = select(Suppression.id).where(
        Suppression.channel == "sms", Suppression.address == number
    )
    return session.scalar(query) is not None


def _last_sent(session: Session, number: str, now: datetime) -> int | None:
    """The last SMS that reached this number before now: what the reply most likely answers."""
    return session.scalar(
        select(Message.id)
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(
            Patient.phone == number,
            Message.channel == "sms",
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
        count = suppress_address(session, "sms", reply.from_number, why, "patient", now)
        detail = {"channel": "sms", "reply_id": reply.id, "messages": count}
        record(session, "opted_out", "patient", now, reply.enrollment_id, reason=why, detail=detail)
    elif reply.kind == ReplyKind.START:
        # Only future messages go out again: those already marked suppressed stay unsent.
        lifted = session.execute(
            delete(Suppression).where(
                Suppression.channel == "sms", Suppression.address == reply.from_number
            )
        ).rowcount  # type: ignore[attr-defined]
        detail = {"channel": "sms", "reply_id": reply.id, "lifted": bool(lifted)}
        record(session, "opted_in", "patient", now, reply.enrollment_id, detail=detail)
    elif reply.kind == ReplyKind.PAIN:
        detail = {"reply_id": reply.id, "score": reply.pain_score, "urgent": reply.urgent}
        record(
            session,
            "pain_score",
            "patient",
            now,
            reply.enrollment_id,
            reason=reply.urgent_reason,
            detail=detail,
        )


def _choose_answer(session: Session, reply: Reply, now: datetime) -> str | None:
    fixed = {ReplyKind.STOP: "stopped", ReplyKind.START: "started", ReplyKind.HELP: "help"}
    if reply.kind in fixed:
        return fixed[ReplyKind(reply.kind)]
    if reply.kind == ReplyKind.PAIN and not reply.urgent:
        return None  # a routine score needs no answer
    # Questions and urgent replies: point to the phone, each answer once a day, and never to a
    # number that opted out (it asked for no more texts; Twilio would refuse the answer anyway).
    answer = "urgent" if reply.urgent else "not_monitored"
    if _opted_out(session, reply.from_number) or _answered_lately(session, reply, now, answer):
        return None
    return answer


def _answered_lately(session: Session, reply: Reply, now: datetime, answer: str) -> bool:
    since = now - AUTO_ANSWER_EVERY
    earlier = session.scalars(
        select(Reply.id).where(
            Reply.from_number == reply.from_number, Reply.received_at > since, Reply.id != reply.id
        )
    ).all()
    if not earlier:
        return False
    answered = session.scalar(
        select(Event.id)
        .where(
            Event.kind == "replied",
            Event.at > since,
            Event.detail["reply_id"].as_integer().in_(earlier),
            Event.detail["answer"].as_string() == answer,
        )
        .limit(1)
    )
    return answered is not None


def _replay(session: Session, sid: str) -> Outcome | None:
    """The outcome of a reply stored before, rebuilt from its row and its "replied" event."""
    reply = session.scalar(select(Reply).where(Reply.provider_id == sid))
    if reply is None:
        return None
    detail = session.scalar(
        select(Event.detail).where(
            Event.kind == "replied",
            Event.at == reply.received_at,
            Event.detail["reply_id"].as_integer() == reply.id,
        )
    )
    language = session.scalar(select(Patient.language).where(Patient.id == reply.patient_id))
    answer = (detail or {}).get("answer")
    return Outcome(
        reply.id, reply.kind, reply.urgent, answer, language if language in LANGUAGES else "en"
    )


# --- staff ------------------------------------------------------------------------------------


def mark_handled(session: Session, reply_id: int, actor: str, now: datetime) -> bool:
    """Mark a reply as dealt with; False if it already was (nothing changes then)."""
    reply = session.get(Reply, reply_id, with_for_update=True)
    if reply is None:
        raise NotFoundError(f"id: no reply {reply_id}")
    if reply.handled_at is not None:
        return False
    reply.handled_at, reply.handled_by = now, actor
    record(session, "reply_handled", actor, now, reply.enrollment_id, detail={"reply_id": reply_id})
    return True
