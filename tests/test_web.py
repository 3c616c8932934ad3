"""The web side over real HTTP: status callbacks, signatures, request limits, one-click
unsubscribe, /healthz and /metrics. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from aftercare.channels.memory import MemoryChannel
from aftercare.daemon import heartbeat
from aftercare.dispatch import Dispatcher
from aftercare.metrics import exposition, metric
from aftercare.models import Event, Message, Suppression
from aftercare.tokens import make_token
from tests.factories import enroll
from tests.web_server import PUBLIC_URL, TOKEN

STATUS = "/webhooks/twilio/status"


@pytest.fixture
def sent_sms(web, clock):
    """One enrollment whose welcome SMS and email went out; returns (sms sid, dispatcher)."""
    app = web.app
    enroll(app, clock.now(), email="ana@example.org")
    clock.set(clock.now().replace(hour=18))
    channels = {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")}
    dispatcher = Dispatcher(
        app.sessions, channels, app.catalog, app.settings, clock, "w", rng=random.Random(1)
    )
    dispatcher.dispatch_due()
    row = _message(app, "sms")
    yield row.provider_id, dispatcher
    dispatcher.close()


def _message(app, channel: str = "sms") -> Message:
    with app.sessions() as session:
        return session.scalars(
            select(Message).where(Message.step == "welcome-home", Message.channel == channel)
        ).one()


def _events(app, kind: str) -> int:
    with app.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Event).where(Event.kind == kind)) or 0
        )


def test_a_delivery_receipt_moves_the_message_forward(web, sent_sms):
    sid, _ = sent_sms
    answer = web.signed_post(STATUS, {"MessageSid": sid, "MessageStatus": "delivered"})
    assert answer.status_code == 200
    assert _message(web.app).status == "delivered"
    assert _events(web.app, "delivered") == 1


def test_a_late_or_repeated_callback_never_moves_it_back_or_twice(web, sent_sms):
    sid, _ = sent_sms
    for status in ("delivered", "sent", "delivered", "undelivered", "queued"):
        assert (
            web.signed_post(STATUS, {"MessageSid": sid, "MessageStatus": status}).status_code == 200
        )
    assert _message(web.app).status == "delivered"
    assert _events(web.app, "delivered") == 1


def test_an_undelivered_callback_records_the_error_code(web, sent_sms):
    sid, _ = sent_sms
    web.signed_post(
        STATUS, {"MessageSid": sid, "MessageStatus": "undelivered", "ErrorCode": "30003"}
    )
    row = _message(web.app)
    assert (row.status, row.error_code) == ("undelivered", "30003")


@pytest.mark.parametrize("code", ["21610", "30005", "30006"])
def test_codes_that_mean_never_again_suppress_the_number(web, sent_sms, code):
    sid, dispatcher = sent_sms
    web.signed_post(STATUS, {"MessageSid": sid, "MessageStatus": "failed", "ErrorCode": code})
    with web.app.sessions() as session:
        assert session.scalars(select(Suppression.address)).all() == ["+12025550143"]
    dispatcher.clock.advance(timedelta(days=2))
    dispatcher.dispatch_due()
    with web.app.sessions() as session:
        statuses = set(
            session.scalars(
                select(Message.status).where(
                    Message.channel == "sms", Message.step == "bandage-off"
                )
            )
        )
    assert statuses == {"suppressed"}


def test_a_callback_for_an_unknown_message_answers_200_and_changes_nothing(web, sent_sms):
    answer = web.signed_post(STATUS, {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"})
    assert answer.status_code == 200
    assert _message(web.app).status == "sent"


def test_a_forged_or_missing_signature_is_refused(web, sent_sms):
    sid, _ = sent_sms
    params = {"MessageSid": sid, "MessageStatus": "delivered"}
    assert web.signed_post(STATUS, params, signature="bm90IGEgc2lnbmF0dXJl").status_code == 403
    assert requests.post(web.url + STATUS, data=params, timeout=5).status_code == 403
    # A genuine signature for other parameters, replayed with these.
    stolen = RequestValidator(TOKEN).compute_signature(
        PUBLIC_URL + STATUS, {"MessageSid": sid, "MessageStatus": "sent"}
    )
    assert web.signed_post(STATUS, params, signature=stolen).status_code == 403
    assert _message(web.app).status == "sent"


def test_wrong_content_types_and_oversized_bodies_get_4xx(web, sent_sms):
    assert requests.post(web.url + STATUS, json={"a": 1}, timeout=5).status_code == 415
    big = "x" * (200 * 1024)
    answer = requests.post(web.url + STATUS, data={"Body": big}, timeout=5)
    assert answer.status_code == 413
    junk = requests.post(
        web.url + STATUS,
        data=b"%%%\xff\x00=&&",
        timeout=5,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert junk.status_code == 403
    assert requests.get(web.url + STATUS, timeout=5).status_code == 405
    assert requests.get(web.url + "/nope", timeout=5).status_code == 404


def test_the_unsubscribe_link_shows_a_page_then_unsubscribes_on_post(web, sent_sms):
    patient_id = 1
    token = make_token(web.app.settings.secret_key, patient_id, "email")
    page = requests.get(f"{web.url}/unsubscribe/{token}", timeout=5)
    assert page.status_code == 200 and '<form method="post">' in page.text
    with web.app.sessions() as session:
        assert (
            session.scalar(select(func.count()).select_from(Suppression)) == 0
        )  # GET changes nothing
    done = requests.post(
        f"{web.url}/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"}, timeout=5
    )
    assert done.status_code == 200 and "no more reminder emails" in done.text
    assert "Set-Cookie" not in done.headers
    with web.app.sessions() as session:
        assert session.scalars(select(Suppression.address)).all() == ["ana@example.org"]
        pending_email = session.scalars(
            select(Message.status).where(Message.channel == "email", Message.step == "bandage-off")
        ).all()
    assert pending_email == ["suppressed"]


@pytest.mark.parametrize(
    "token", ["1.email.AAAAAAAAAAAAAAAAAAAAAA", "garbage", "1.sms", "2.email.x" * 30]
)
def test_an_invalid_unsubscribe_token_answers_404_and_reveals_nothing(web, token):
    for method in (requests.get, requests.post):
        answer = method(f"{web.url}/unsubscribe/{token}", timeout=5)
        assert answer.status_code == 404
        assert answer.text.strip() == "Not Found"


def test_healthz_needs_the_database_and_a_recent_dispatcher_tick(web, sent_sms, clock):
    _, dispatcher = sent_sms
    failing = requests.get(web.url + "/healthz", timeout=5)
    assert failing.status_code == 503 and "never ticked" in failing.text
    heartbeat(dispatcher, clock.now())
    ok = requests.get(web.url + "/healthz", timeout=5)
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    clock.advance(timedelta(minutes=10))
    assert requests.get(web.url + "/healthz", timeout=5).status_code == 503


def test_metrics_report_messages_backlog_errors_and_the_last_tick(web, sent_sms, clock):
    _, dispatcher = sent_sms
    heartbeat(dispatcher, clock.now())
    text = requests.get(web.url + "/metrics", timeout=5).text
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    sms = (("channel", "sms"),)
    assert samples["aftercare_messages", (*sms, ("status", "sent"))] == 1
    assert samples["aftercare_messages", (*sms, ("status", "pending"))] == 8
    assert samples["aftercare_backlog_messages", ()] == 0
    # To the second and beyond: a staleness alert compares it with time().
    assert samples["aftercare_last_tick_timestamp_seconds", ()] == clock.now().timestamp()


def test_metrics_keep_every_digit_of_large_values():
    families: list = []
    metric(families, "aftercare_messages", "gauge", "Messages.", [({"status": "sent"}, 12345678)])
    metric(
        families, "aftercare_last_tick_timestamp_seconds", "gauge", "Tick.", [({}, 1796227201.5)]
    )
    (count, tick) = [
        s.value for f in text_string_to_metric_families(exposition(families)) for s in f.samples
    ]
    assert (count, tick) == (12345678, 1796227201.5)
