"""Patients' replies: the inbound webhook's unit of work, and what we answer.

:func:`receive` stores one reply and acts on it in one transaction (:mod:`aftercare.store.replies`),
then emails urgent ones to staff after the commit (``alerts``) and returns the answer's text.
Logs carry ids, kinds and codes only: never the number, the name or the body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.exc import IntegrityError

from aftercare.alerts import notify_staff
from aftercare.app import App
from aftercare.config import Settings
from aftercare.db import transaction
from aftercare.errors import AftercareError
from aftercare.statuses import Answer
from aftercare.store import replies
from aftercare.store.replies import Inbound, ReplyOutcome

log = logging.getLogger("aftercare.inbox")

# What we answer, by name (the name is kept on the reply and in its "replied" event).
#
# Twilio's Advanced Opt-Out may answer the exact keywords STOP/START/HELP itself as well. We keep
# our answers for the keywords too: free-text revocations ("stop texting me") are ours alone to
# confirm, a sender without Advanced Opt-Out gets no other confirmation, and one answer for every
# way of saying stop does not depend on how the Twilio account is configured. To avoid a double
# confirmation, switch off Twilio's keyword *replies* (keep its opt-out list).
ANSWERS: dict[Answer, dict[str, str]] = {
    Answer.STOPPED: {
        "en": "You will get no more texts from {clinic}. Reply START to resume.",
        "es": "No recibirá más mensajes de {clinic}. Responda START para volver a recibirlos.",
    },
    Answer.STARTED: {
        # What START does and does not do: texts missed while opted out are not re-sent.
        "en": "{clinic}: your next aftercare texts will come as planned; the ones missed while "
        "you were opted out will not be re-sent. Reply STOP to end.",
        "es": "{clinic}: sus próximos mensajes llegarán como previsto; los que perdió "
        "mientras estaba dado de baja no se reenviarán. Responda STOP para salir.",
    },
    Answer.HELP: {
        "en": "{clinic} aftercare reminders. Questions: call {phone}. "
        "In an emergency call 911. Reply STOP to end.",
        "es": "Recordatorios de cuidados de {clinic}. Dudas: llame al {phone}. "
        "En una emergencia llame al 911. Responda STOP para salir.",
    },
    Answer.REASK: {
        "en": "{clinic}: please answer with one number from 0 (none) to 10 (worst) "
        "for your back pain today. Reply STOP to end.",
        "es": "{clinic}: responda con un número de 0 (nada) a 10 (el peor) "
        "para su dolor de espalda hoy. Responda STOP para salir.",
    },
    Answer.NOT_MONITORED: {
        "en": "{clinic}: this number is not monitored for urgent needs. "
        "Please call us at {phone}, or 911 in an emergency.",
        "es": "{clinic}: este número no se revisa para urgencias. "
        "Llámenos al {phone}, o al 911 en una emergencia.",
    },
}


def receive(app: App, form: Mapping[str, str]) -> str | None:
    """Store one inbound SMS and act on it; returns the text to answer with, or None."""
    inbound = _inbound(form)
    if inbound is None:
        log.warning("inbound SMS without MessageSid or From: ignored")
        return None
    try:
        with transaction(app.sessions) as session:
            now, expecting = app.clock.now(), _expecting(app)
            outcome = replies.store(session, inbound, now, app.settings.escalate_after, expecting)
    except IntegrityError:  # a concurrent delivery of the same MessageSid committed first
        outcome = None
    if outcome is None:
        with app.sessions() as session:
            outcome = replies.replay(session, inbound.sid)
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


def answer_text(outcome: ReplyOutcome, settings: Settings) -> str | None:
    if outcome.answer is None:
        return None
    template = ANSWERS[outcome.answer][outcome.language]
    return template.format(clinic=settings.clinic_name, phone=settings.clinic_phone)


def _expecting(app: App) -> set[tuple[str, str]]:
    """The (procedure, step) pairs whose texts ask for a pain score."""
    return {
        (name, step.id)
        for name in app.catalog.names()
        for step in app.catalog.get(name).steps
        if step.expects == "pain-score"
    }


def _inbound(form: Mapping[str, str]) -> Inbound | None:
    sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    number = (form.get("From") or "").strip()
    if not sid or not number or len(sid) > 64 or len(number) > 20:
        return None
    return Inbound(sid, number, form.get("Body") or "")
