"""Every webhook body, hostile: the status callback, the inbound reply and the unsubscribe link,
over the real WSGI app (werkzeug's test client, no sockets). The answer is 200, 403, 404, 413
or 415, never a 500; a reply from one number never changes another patient; a receipt never
touches a message whose provider id differs; what is stored is what was sent."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update
from twilio.request_validator import RequestValidator
from werkzeug.test import Client

from aftercare.app import App
from aftercare.db import transaction
from aftercare.enrollment import parse_request
from aftercare.models import EarlyReceipt, Message, Patient, Reply, Suppression
from aftercare.store.enrollments import enroll_many
from aftercare.tokens import make_token
from aftercare.web import create_app
from tests.strategies import HOSTILE, any_text, nasty_text, sqlite_only

TOKEN = "hostile-auth-token-0123456789abcdef"
PUBLIC_URL = "https://care.example.org"
STATUS, INBOUND = "/webhooks/twilio/status", "/webhooks/twilio/inbound"
ANA, BO = "+12025550143", "+12025550178"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def client(app: App, clock: Any) -> Iterator[Client]:
    """The web app with two patients, Ana and Bo, each with one SMS sent (SID SMana / SMbo)."""
    app.settings = app.settings.with_overrides(
        twilio_auth_token=TOKEN, public_url=PUBLIC_URL, secret_key="hostile-secret-0123456789"
    )
    with transaction(app.sessions) as session:
        requests = [
            parse_request(
                {
                    "first_name": name,
                    "phone": phone,
                    "email": f"{name.lower()}@example.org",
                    "timezone": "America/Chicago",
                    "procedure": "kyphoplasty",
                    "discharged_at": "2026-11-23T10:00-06:00",
                },
                app.catalog,
                clock.now(),
            )
            for name, phone in (("Ana", ANA), ("Bo", BO))
        ]
        enroll_many(session, requests, app.settings, clock.now(), "staff:test")
        for enrollment_id, sid in ((1, "SMana"), (2, "SMbo")):
            first = session.scalar(
                select(Message.id)
                .where(Message.enrollment_id == enrollment_id, Message.channel == "sms")
                .order_by(Message.due_at)
                .limit(1)
            )
            session.execute(
                update(Message)
                .where(Message.id == first)
                .values(status="sent", provider_id=sid, sent_at=clock.now(), attempts=1)
            )
    yield Client(create_app(app))


def signed(client: Client, path: str, params: dict[str, str]) -> Any:
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + path, params)
    return client.post(
        path,
        data=urlencode(params),
        headers={"X-Twilio-Signature": signature, "Content-Type": FORM},
    )


def state_of(app: App, phone: str) -> tuple[Any, ...]:
    """Everything about one patient a webhook could change: messages, replies, suppressions."""
    with app.sessions() as session:
        patient = session.scalar(select(Patient).where(Patient.phone == phone))
        assert patient is not None
        messages = session.execute(
            select(Message.id, Message.status, Message.error_code, Message.provider_id)
            .join(Message.enrollment)
            .where(Message.enrollment.has(patient_id=patient.id))
            .order_by(Message.id)
        ).all()
        replies = session.scalars(select(Reply.id).where(Reply.patient_id == patient.id)).all()
        suppressed = session.scalars(
            select(Suppression.channel).where(Suppression.address.in_([phone, patient.email or ""]))
        ).all()
    return (tuple(messages), tuple(replies), tuple(sorted(suppressed)))


def answer_text(response: Any) -> str | None:
    assert response.status_code == 200
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    message = root.find("Message")
    return None if message is None else message.text


def stored_body(app: App, sid: str) -> str | None:
    with app.sessions() as session:
        return session.scalar(select(Reply.body).where(Reply.provider_id == sid))


# --- inbound -----------------------------------------------------------------------------------

_sids = iter(range(10**6))

replies_text = st.one_of(
    nasty_text,
    any_text,
    st.sampled_from(["STOP", "start", "HELP", "7", "10/10", "fever", "stop texting me", "YES"]),
    st.text(st.sampled_from("0123456789 "), min_size=4000, max_size=6000),
    st.sampled_from(["fever " * 5000, "no fever " * 4000, "don't stop texting " * 2000]),
)


@sqlite_only
@HOSTILE
@given(body=replies_text)
def test_any_reply_from_one_number_is_answered_and_never_changes_another_patient(
    client: Client, app: App, body: str
) -> None:
    bo_before = state_of(app, BO)
    sid = f"SMin{next(_sids)}"

    response = signed(client, INBOUND, {"MessageSid": sid, "From": ANA, "Body": body})

    answer_text(response)
    assert state_of(app, BO) == bo_before
    # Stored as sent (PostgreSQL cannot hold NUL: it becomes U+FFFD on every backend).
    assert stored_body(app, sid) == body.replace("\x00", "\ufffd")


@sqlite_only
@HOSTILE
@given(
    sid=st.one_of(any_text, nasty_text),
    sender=st.one_of(any_text, nasty_text, st.sampled_from([ANA, ANA + " ", "12025550143"])),
    body=st.one_of(any_text, nasty_text),
    extra=st.dictionaries(any_text, any_text, max_size=3),
)
def test_any_signed_inbound_form_answers_200_and_only_acts_for_its_own_number(
    client: Client, app: App, sid: str, sender: str, body: str, extra: dict[str, str]
) -> None:
    bo_before = state_of(app, BO)
    params = extra | {"MessageSid": sid, "From": sender, "Body": body}

    response = signed(client, INBOUND, params)

    answer_text(response)
    if sender.strip() != BO:
        assert state_of(app, BO) == bo_before


@sqlite_only
@HOSTILE
@given(
    body=st.binary(max_size=2000),
    content_type=st.sampled_from(
        [FORM, FORM + "; charset=utf-16", "text/plain", "", "multipart/form-data; boundary=x"]
    ),
    signature=st.one_of(st.none(), any_text.filter(lambda t: t.isascii())),
    path=st.sampled_from([STATUS, INBOUND]),
)
def test_unsigned_or_garbled_requests_are_refused_and_change_nothing(
    client: Client,
    row_counts: Any,
    body: bytes,
    content_type: str,
    signature: str | None,
    path: str,
) -> None:
    before = row_counts()
    headers = {"Content-Type": content_type} | (
        {"X-Twilio-Signature": signature} if signature is not None else {}
    )

    response = client.post(path, data=body, headers=headers)

    assert response.status_code in (403, 413, 415)
    assert row_counts() == before


def test_an_oversized_body_is_refused_with_413_before_it_is_read(client: Client) -> None:
    body = urlencode({"Body": "x" * (65 * 1024)})

    response = client.post(INBOUND, data=body, headers={"Content-Type": FORM})

    assert response.status_code == 413


def test_a_reply_of_five_thousand_digits_is_a_question_not_a_500(client: Client, app: App) -> None:
    # int() refuses more than 4300 digits: the pain-score reader raised, the webhook said 500.
    response = signed(
        client, INBOUND, {"MessageSid": "SMdigits", "From": ANA, "Body": "0" * 5000 + "7"}
    )

    assert answer_text(response) is not None  # the not-monitored notice, as for any question
    with app.sessions() as session:
        assert (
            session.scalar(select(Reply.kind).where(Reply.provider_id == "SMdigits")) == "question"
        )


def test_a_nul_in_a_reply_is_stored_as_a_replacement_character_on_both_databases(
    client: Client, app: App
) -> None:
    # PostgreSQL text cannot hold NUL: the whole webhook failed with 500 and Twilio retried it.
    for sid, params in (
        ("SMnul1", {"MessageSid": "SMnul1", "From": ANA, "Body": "pain\x00 7"}),
        ("SMnul2\x00", {"MessageSid": "SMnul2\x00", "From": ANA, "Body": "hi"}),
        ("SMnul3", {"MessageSid": "SMnul3", "From": ANA + "\x00", "Body": "hi"}),
    ):
        assert signed(client, INBOUND, params).status_code == 200, sid
    assert stored_body(app, "SMnul1") == "pain\ufffd 7"
    assert stored_body(app, "SMnul2\ufffd") == "hi"


def test_a_stop_from_one_number_suppresses_only_that_number(client: Client, app: App) -> None:
    bo_before = state_of(app, BO)

    answer = answer_text(
        signed(client, INBOUND, {"MessageSid": "SMstop", "From": ANA, "Body": "STOP"})
    )

    assert answer is not None and "no more texts" in answer
    assert state_of(app, BO) == bo_before
    assert "sms" in state_of(app, ANA)[2]


# --- status callbacks --------------------------------------------------------------------------

twilio_statuses = st.one_of(
    st.sampled_from(
        ["queued", "sent", "delivered", "undelivered", "failed", "read", " DELIVERED "]
    ),
    nasty_text,
)


@sqlite_only
@HOSTILE
@given(
    sid=st.one_of(
        st.sampled_from(["SMana", "SMbo", "smana", "SMana ", "SMan", "SMana\x00", "", "%"]),
        any_text,
    ),
    status=twilio_statuses,
    code=st.one_of(st.none(), st.sampled_from(["30003", "21610", "30006"]), st.text(max_size=20)),
)
def test_a_status_callback_only_ever_touches_the_message_with_that_sid(
    client: Client, app: App, sid: str, status: str, code: str | None
) -> None:
    ana_before, bo_before = state_of(app, ANA), state_of(app, BO)
    params = {"MessageSid": sid, "MessageStatus": status} | ({"ErrorCode": code} if code else {})

    response = signed(client, STATUS, params)

    assert response.status_code == 200
    if sid != "SMana":
        assert state_of(app, ANA) == ana_before
    if sid != "SMbo":
        assert state_of(app, BO) == bo_before


def test_a_status_callback_with_a_nul_in_it_changes_nothing_on_both_databases(
    client: Client, app: App
) -> None:
    before = state_of(app, ANA)
    for params in (
        {"MessageSid": "SMana\x00", "MessageStatus": "delivered"},
        {"MessageSid": "SMana", "MessageStatus": "deliv\x00ered"},
    ):
        assert signed(client, STATUS, params).status_code == 200
    assert state_of(app, ANA) == before


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_an_error_code_longer_than_the_column_is_not_a_500(client: Client, app: App) -> None:
    params = {"MessageSid": "SMana", "MessageStatus": "failed", "ErrorCode": "9" * 40}

    assert signed(client, STATUS, params).status_code == 200
    with app.sessions() as session:
        stored = session.execute(
            select(Message.status, Message.error_code).where(Message.provider_id == "SMana")
        ).one()
    assert tuple(stored) == ("failed", "9" * 32)  # cut to fit its column


@pytest.mark.parametrize(
    "db_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_oversized_receipt_fields_for_a_message_in_flight_are_not_a_500(
    client: Client, app: App
) -> None:
    with transaction(app.sessions) as session:  # claimed, sending, no SID recorded yet
        ana = session.scalar(
            select(Message.id).where(
                Message.enrollment_id == 1, Message.channel == "sms", Message.status == "pending"
            )
        )
        session.execute(update(Message).where(Message.id == ana).values(status="sending"))
    for params in (
        {"MessageSid": "SM" + "a" * 100, "MessageStatus": "delivered"},
        {"MessageSid": "SMnew", "MessageStatus": "  Delivered" + " " * 40},
        {"MessageSid": "SMnew", "MessageStatus": "failed", "ErrorCode": "7" * 100},
    ):
        assert signed(client, f"{STATUS}?message={ana}", params).status_code == 200
    with app.sessions() as session:
        parked = session.execute(
            select(EarlyReceipt.provider_id, EarlyReceipt.twilio_status, EarlyReceipt.error_code)
        ).all()
    # The SID longer than any SID is nobody's; the others are kept, trimmed to fit.
    assert sorted(map(tuple, parked)) == [
        ("SMnew", "delivered", None),
        ("SMnew", "failed", "7" * 32),
    ]


# --- unsubscribe -------------------------------------------------------------------------------


@sqlite_only
@HOSTILE
@given(token=st.one_of(any_text, nasty_text, st.text(max_size=400)), post=st.booleans())
def test_any_unsubscribe_token_but_a_real_one_answers_404_and_changes_nothing(
    client: Client, app: App, row_counts: Any, token: str, post: bool
) -> None:
    before = row_counts()
    path = "/unsubscribe/" + quote(token, safe="")

    response = client.post(path, data={"x": token}) if post else client.get(path)

    assert response.status_code in (200, 404, 405)
    if response.status_code != 200:
        assert row_counts() == before


def test_one_patients_unsubscribe_link_unsubscribes_only_that_patient(
    client: Client, app: App
) -> None:
    token = make_token(app.settings.secret_key, 1, "email")
    bo_before = state_of(app, BO)

    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and state_of(app, ANA)[2] == ()
    done = client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})

    assert done.status_code == 200
    assert state_of(app, ANA)[2] == ("email",)
    assert state_of(app, BO) == bo_before
    # A token for one channel does not unsubscribe the other, and a forged one nothing at all.
    for forged in (
        token.replace("1.email", "2.email"),
        token.replace(".email.", ".sms."),
        token[:-1],
    ):
        assert client.post(f"/unsubscribe/{forged}").status_code == 404
    assert state_of(app, BO) == bo_before
