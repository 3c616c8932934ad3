"""Patients' replies through the real WSGI app over HTTP (waitress on loopback), signed as Twilio
signs them: opt-out and opt-in, HELP, pain scores, warning signs with the staff email (a real
SMTP server), the once-a-day automatic answer, duplicates, unknown numbers and forged requests.
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import random
import threading
import uuid
from datetime import timedelta
from xml.etree import ElementTree

import pytest
import requests
from sqlalchemy import func, select

from aftercare import alerts
from aftercare.channels.memory import MemoryChannel
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher
from aftercare.enrollment import parse_request
from aftercare.models import Event, Message, Reply, Suppression
from aftercare.store.enrollments import enroll_many

INBOUND = "/webhooks/twilio/inbound"
ANA = "+12025550143"
LUIS = "+12025550178"
STRANGER = "+13125550199"
CLINIC = "Spine Care Clinic"
CLINIC_PHONE = "+1 555 010 0199"
LATER = "2026-11-23T11:00-06:00"  # a second enrollment, discharged an hour after the first
NOT_MONITORED = (
    f"{CLINIC}: this number is not monitored for urgent needs. "
    f"Please call us at {CLINIC_PHONE}, or 911 in an emergency."
)


# --- helpers ----------------------------------------------------------------------------------


def enroll(app, clock, procedure="kyphoplasty", discharged_at="2026-11-23T10:00-06:00",
           phone=ANA, first_name="Ana", language="en"):  # fmt: skip
    fields = {"first_name": first_name, "phone": phone, "timezone": "America/Chicago",
              "email": f"{first_name.lower()}@example.org", "procedure": procedure,
              "discharged_at": discharged_at, "language": language}  # fmt: skip
    with transaction(app.sessions) as session:
        request = parse_request(fields, app.catalog, clock.now())
        (result,) = enroll_many(session, [request], app.settings, clock.now(), "staff:test")
    return result.enrollment_id


@pytest.fixture
def channels():
    return {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")}


@pytest.fixture
def dispatcher(web, clock, channels):
    app = web.app
    sender = Dispatcher(app.sessions, channels, app.catalog, app.settings, clock, "w",
                        rng=random.Random(1))  # fmt: skip
    yield sender
    sender.close()


@pytest.fixture
def ana(web, clock, dispatcher):
    """Ana, enrolled this morning; her welcome SMS and email went out at 18:00 UTC."""
    enrollment_id = enroll(web.app, clock)
    clock.set(clock.now().replace(hour=18))
    dispatcher.dispatch_due()
    return enrollment_id


def text(web, body, number=ANA, sid=None):
    """The patient texts ``body``; returns (HTTP response, the TwiML answer's text or None)."""
    params = {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "From": number,
              "To": "+15005550006", "Body": body, "NumMedia": "0"}  # fmt: skip
    response = web.signed_post(INBOUND, params)
    return response, _answer(response)


def _answer(response):
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/xml")
    message = ElementTree.fromstring(response.content).find("Message")
    return None if message is None else message.text


def replies(app):
    with app.sessions() as session:
        return session.scalars(select(Reply).order_by(Reply.id)).all()


def events(app, kind):
    with app.sessions() as session:
        return session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)).all()


def statuses(app, enrollment_id, channel="sms"):
    with app.sessions() as session:
        rows = session.execute(
            select(Message.step, Message.status).where(
                Message.enrollment_id == enrollment_id, Message.channel == channel
            )
        ).all()
    return dict(rows)


def suppressed_numbers(app):
    with app.sessions() as session:
        return session.scalars(
            select(Suppression.address).where(Suppression.channel == "sms")
        ).all()


# --- opting out and in ------------------------------------------------------------------------


def test_stop_suppresses_every_sms_of_every_enrollment_at_once(web, clock, ana):
    other = enroll(web.app, clock, "vertebroplasty", "2026-11-20T09:00-06:00")
    _, answer = text(web, "STOP")
    assert answer == f"You will get no more texts from {CLINIC}. Reply START to resume."
    assert suppressed_numbers(web.app) == [ANA]
    assert statuses(web.app, ana)["welcome-home"] == "sent"  # history stays
    assert statuses(web.app, ana)["bandage-off"] == "suppressed"
    assert set(statuses(web.app, other).values()) <= {"suppressed", "expired"}
    assert set(statuses(web.app, ana, "email").values()) <= {"pending", "sent"}  # SMS only
    (opted_out,) = events(web.app, "opted_out")
    assert (opted_out.actor, opted_out.enrollment_id) == ("patient", other)  # the latest
    assert opted_out.detail["reply_id"] == replies(web.app)[0].id


def test_after_stop_dispatch_suppresses_the_next_due_sms_and_still_sends_email(
    web, clock, ana, dispatcher, channels
):
    text(web, "stop")
    # Staff enroll Ana again later: her new SMS are suppressed when they come due, not sent.
    later = enroll(web.app, clock, "vertebroplasty", LATER)
    channels["sms"].sent.clear()
    clock.advance(timedelta(hours=1))
    tally = dispatcher.dispatch_due()
    assert tally["suppressed"] >= 1
    assert channels["sms"].sent == []
    assert statuses(web.app, later)["welcome-home"] == "suppressed"
    assert statuses(web.app, later, "email")["welcome-home"] == "sent"


def test_start_lifts_the_opt_out_for_future_messages_only(web, clock, ana, dispatcher, channels):
    text(web, "STOP")
    _, answer = text(web, "Start")
    assert answer == (
        f"{CLINIC}: your next aftercare texts will come as planned; the ones missed while you "
        "were opted out will not be re-sent. Reply STOP to end."
    )
    assert suppressed_numbers(web.app) == []
    assert statuses(web.app, ana)["bandage-off"] == "suppressed"  # stays unsent
    (opted_in,) = events(web.app, "opted_in")
    assert (opted_in.actor, opted_in.detail["lifted"]) == ("patient", True)
    later = enroll(web.app, clock, "vertebroplasty", LATER)
    # Day 2 09:00 in Chicago: the later enrollment's first text after today's (one a day).
    clock.set(clock.now().replace(day=25, hour=15))
    dispatcher.dispatch_due()
    assert statuses(web.app, later)["bandage-off"] == "sent"
    assert [m.message_id for m in channels["sms"].sent][-1] > 0


def test_yes_opts_back_in_only_a_number_that_opted_out(web, ana):
    _, first = text(web, "YES")
    assert first == NOT_MONITORED  # an ordinary answer from someone who never opted out
    text(web, "STOP")
    _, answer = text(web, "yes")
    assert "will not be re-sent" in answer
    assert suppressed_numbers(web.app) == []
    assert [r.kind for r in replies(web.app)] == ["question", "stop", "start"]


@pytest.mark.parametrize(
    ("body", "language"),
    [("please stop texting me", "en"), ("No me manden más mensajes", "es"), ("alto", "es")],
)
def test_a_plain_request_to_stop_counts_as_stop(web, clock, body, language):
    enroll(web.app, clock, language=language)
    _, answer = text(web, body)
    expected = {
        "en": f"You will get no more texts from {CLINIC}. Reply START to resume.",
        "es": f"No recibirá más mensajes de {CLINIC}. Responda START para volver a recibirlos.",
    }
    assert answer == expected[language]
    assert suppressed_numbers(web.app) == [ANA]
    assert replies(web.app)[0].kind == "stop"


def test_a_question_that_only_sounds_like_stop_is_not_an_opt_out(web, ana):
    _, answer = text(web, "The pain won't stop. When can I stop the ice?")
    assert answer == NOT_MONITORED
    assert suppressed_numbers(web.app) == []
    assert replies(web.app)[0].kind == "question"


# --- help -------------------------------------------------------------------------------------


def test_help_answers_with_the_clinic_name_and_phone_in_the_patients_language(web, clock):
    enroll(web.app, clock)
    enroll(web.app, clock, phone=LUIS, first_name="Luis", language="es")
    _, english = text(web, "HELP")
    _, spanish = text(web, "help", number=LUIS)
    _, stranger = text(web, "INFO", number=STRANGER)
    help_en = (
        f"{CLINIC} aftercare reminders. Questions: call {CLINIC_PHONE}. "
        "In an emergency call 911. Reply STOP to end."
    )
    assert english == stranger == help_en
    assert spanish.startswith(f"Recordatorios de cuidados de {CLINIC}. Dudas: llame al")
    assert [r.kind for r in replies(web.app)] == ["help"] * 3


# --- pain scores ------------------------------------------------------------------------------


def test_a_pain_score_of_seven_or_more_is_urgent(web, ana):
    _, calm = text(web, "6/10")
    _, answer = text(web, "pain 8")
    assert calm is None  # a routine score needs no answer
    assert answer == NOT_MONITORED  # an urgent one points to the phone
    first, second = replies(web.app)
    assert (first.kind, first.pain_score, first.urgent) == ("pain", 6, False)
    assert (second.pain_score, second.urgent, second.urgent_reason) == (8, True, "pain 8/10")
    assert second.enrollment_id == ana
    scores = events(web.app, "pain_score")
    assert [e.detail["score"] for e in scores] == [6, 8]
    assert scores[1].reason == "pain 8/10"


def test_a_pain_score_that_rose_by_three_is_urgent(web, clock, ana):
    text(web, "2")
    clock.advance(timedelta(days=1))
    _, answer = text(web, "dolor 5")
    clock.advance(timedelta(days=1))
    text(web, "6")
    scores = replies(web.app)
    assert [(r.pain_score, r.urgent_reason) for r in scores] == [
        (2, None), (5, "pain up from 2 to 5"), (6, None)
    ]  # fmt: skip
    assert answer == NOT_MONITORED


def test_pain_scores_are_recorded_on_the_latest_enrollment(web, clock, ana):
    newer = enroll(web.app, clock, "vertebroplasty", LATER)
    text(web, "4")
    assert replies(web.app)[0].enrollment_id == newer


# --- questions and warning signs --------------------------------------------------------------


def test_a_question_is_kept_with_the_message_it_answers(web, ana):
    _, answer = text(web, "Can I shower today?")
    (reply,) = replies(web.app)
    with web.app.sessions() as session:
        welcome = session.scalar(
            select(Message.id).where(Message.step == "welcome-home", Message.channel == "sms")
        )
    assert (reply.kind, reply.urgent, reply.in_reply_to, reply.enrollment_id) == (
        "question", False, welcome, ana
    )  # fmt: skip
    assert answer == NOT_MONITORED
    (replied,) = events(web.app, "replied")
    assert replied.detail == {
        "reply_id": reply.id,
        "kind": "question",
        "urgent": False,
        "answer": "not_monitored",
        "language": "en",
    }


def test_the_automatic_answer_goes_out_once_a_day(web, clock, ana):
    _, first = text(web, "Can I shower?")
    clock.advance(timedelta(hours=1))
    _, second = text(web, "And can I take a bath?")
    clock.advance(timedelta(hours=22))
    _, third = text(web, "Hello?")
    clock.advance(timedelta(hours=2))  # 25 h after the first answer
    _, fourth = text(web, "Can I drive?")
    assert (first, second, third, fourth) == (NOT_MONITORED, None, None, NOT_MONITORED)
    assert len(replies(web.app)) == 4


def test_the_automatic_answer_is_in_spanish_for_a_spanish_speaker(web, clock):
    enroll(web.app, clock, phone=LUIS, first_name="Luis", language="es")
    _, answer = text(web, "¿Puedo bañarme?", number=LUIS)
    assert answer == (
        f"{CLINIC}: este número no se revisa para urgencias. "
        f"Llámenos al {CLINIC_PHONE}, o al 911 en una emergencia."
    )


@pytest.fixture
def staff_mail(web, smtp_server):
    web.app.settings = web.app.settings.with_overrides(
        smtp_url=smtp_server.url, email_from="aftercare@clinic.example",
        staff_email="nurses@clinic.example",
    )  # fmt: skip
    yield smtp_server
    alerts.wait_for_staff_emails()


def test_a_warning_sign_is_urgent_and_emailed_to_staff_at_once(web, ana, staff_mail, caplog):
    caplog.set_level(logging.INFO)
    body = "I have a fever and the site is red <b>'; DROP TABLE reply;--"
    _, answer = text(web, body)
    alerts.wait_for_staff_emails()
    (reply,) = replies(web.app)
    assert (reply.urgent, reply.urgent_reason, reply.body) == (True, "fever", body)
    assert answer == NOT_MONITORED
    (mail,) = staff_mail.messages
    assert mail.rcpt_tos == ("nurses@clinic.example",)
    assert mail.message["Subject"] == f"Urgent patient reply #{reply.id}"
    assert mail.message["Message-ID"] == f"<aftercare.-{reply.id}@clinic.example>"
    text_part = mail.message.get_body(("plain",)).get_content()
    assert f"Urgent reply from patient Ana, enrollment {ana}: {body}" in text_part
    assert [e.detail["reply_id"] for e in events(web.app, "staff_notified")] == [reply.id]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "fever" not in logged and ANA not in logged and "Ana" not in logged


def test_a_failed_staff_email_keeps_the_reply_and_the_answer(web, ana, staff_mail, caplog):
    staff_mail.fail_next(550)
    response, answer = text(web, "tengo fiebre y sangrado")
    alerts.wait_for_staff_emails()
    assert response.status_code == 200 and answer == NOT_MONITORED
    (reply,) = replies(web.app)
    assert reply.urgent_reason == "fever"
    (failed,) = events(web.app, "staff_email_failed")
    assert failed.detail == {"reply_id": reply.id, "channel": "email"}
    assert "550" in failed.reason
    # Ours only: the fake relay (aiosmtpd) logs the addresses it is given, as relays do.
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("aftercare"))
    assert "staff email for reply" in logged
    assert "fiebre" not in logged and "nurses@" not in logged and ANA not in logged


def test_without_a_staff_address_urgent_replies_wait_in_the_inbox(web, ana, smtp_server):
    text(web, "bleeding a lot")
    alerts.wait_for_staff_emails()
    assert replies(web.app)[0].urgent
    assert smtp_server.messages == []


# --- duplicates, strangers, forgeries ---------------------------------------------------------


def test_the_same_webhook_delivered_twice_is_stored_once_and_answered_the_same(web, clock, ana):
    sid = "SM" + "1" * 32
    _, first = text(web, "Can I shower?", sid=sid)
    clock.advance(timedelta(minutes=5))
    _, again = text(web, "Can I shower?", sid=sid)
    assert first == again == NOT_MONITORED
    assert len(replies(web.app)) == 1
    assert len(events(web.app, "replied")) == 1


def test_concurrent_deliveries_of_one_message_store_it_once(web, ana):
    sid = "SM" + "2" * 32
    answers: list[str | None] = []
    lock = threading.Lock()

    def deliver():
        _, answer = text(web, "STOP", sid=sid)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(answers)) == 1 and len(answers) == 6
    assert len(replies(web.app)) == 1
    assert len(events(web.app, "opted_out")) == 1


def test_an_unknown_number_is_stored_and_can_still_stop_and_start(web):
    _, question = text(web, "who is this?", number=STRANGER)
    _, stop = text(web, "STOP", number=STRANGER)
    stored = replies(web.app)
    assert [(r.patient_id, r.enrollment_id, r.from_number) for r in stored] == [
        (None, None, STRANGER)
    ] * 2
    assert question == NOT_MONITORED
    assert stop.startswith("You will get no more texts")
    assert suppressed_numbers(web.app) == [STRANGER]
    _, start = text(web, "UNSTOP", number=STRANGER)
    assert "will not be re-sent" in start and suppressed_numbers(web.app) == []


def test_a_number_that_opted_out_gets_no_automatic_answer(web, ana):
    text(web, "STOP")
    _, answer = text(web, "why did you text me?")
    assert answer is None
    assert replies(web.app)[-1].kind == "question"  # still for staff


def test_a_forged_signature_is_refused_and_nothing_is_stored(web, ana, row_counts):
    before = row_counts()
    params = {"MessageSid": "SM" + "3" * 32, "From": ANA, "Body": "STOP"}
    forged = web.signed_post(INBOUND, params, signature="bm90IGEgc2lnbmF0dXJl")
    unsigned = requests.post(web.url + INBOUND, data=params, timeout=5)
    assert forged.status_code == unsigned.status_code == 403
    assert row_counts() == before


def test_sql_and_markup_are_stored_verbatim(web, ana):
    body = "Robert'); DROP TABLE reply;-- <script>alert('x')</script> & \"más\" \x1b[2J"
    response, _ = text(web, body)
    assert response.status_code == 200
    assert replies(web.app)[0].body == body


def test_an_inbound_request_without_a_sender_is_ignored(web):
    response = web.signed_post(INBOUND, {"MessageSid": "SM" + "4" * 32, "Body": "hi"})
    assert _answer(response) is None
    with web.app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Reply)) == 0
