"""Receipts that arrive before the dispatcher has recorded the message's SID (Twilio can report
on a landline within a second, while the rest of the batch is still sending): parked and applied
when the SID is recorded, never dropped, and never applied to another message. Runs on SQLite
and PostgreSQL, over real HTTP."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import func, select

from aftercare.channels.base import Outgoing, Receipt
from aftercare.channels.memory import MemoryChannel
from aftercare.dispatch import Dispatcher
from aftercare.models import EarlyReceipt, Event, Message, Suppression
from tests.factories import ANA as ANA_FIELDS
from tests.factories import enroll
from tests.web_server import PUBLIC_URL, RunningWeb

STATUS = "/webhooks/twilio/status"
ANA = ANA_FIELDS["phone"]


class ReportsBeforeAnswering:
    """An SMS provider that posts its status callback for a text before it answers the send."""

    name = "sms"

    def __init__(self, web: RunningWeb, status: str, code: str | None = None) -> None:
        self.web, self.status, self.code = web, status, code
        self.answers: list[int] = []
        self.callbacks: list[str] = []

    def send(self, message: Outgoing) -> Receipt:
        sid = f"SM{message.message_id:032d}"
        assert message.status_callback is not None
        self.callbacks.append(message.status_callback)
        form = {"MessageSid": sid, "MessageStatus": self.status}
        if self.code:
            form["ErrorCode"] = self.code
        path = message.status_callback.removeprefix(PUBLIC_URL)
        self.answers.append(self.web.signed_post(path, form).status_code)
        return Receipt(provider_id=sid, provider_status="queued")

    def find_sent(self, message: Outgoing) -> Receipt | None:
        return None

    def close(self) -> None:
        return None


@pytest.fixture
def enrolled(web, clock):
    """Ana enrolled; the clock at the time her welcome texts are due."""
    app = web.app
    enroll(app, clock.now(), channels="sms")
    clock.set(clock.now().replace(hour=18))
    return app


def _dispatch(app, clock, sms) -> None:
    dispatcher = Dispatcher(
        app.sessions, {"sms": sms}, app.catalog, app.settings, clock, "w", rng=random.Random(1)
    )
    try:
        dispatcher.dispatch_due()
    finally:
        dispatcher.close()


def _welcome(app) -> Message:
    with app.sessions() as session:
        return session.scalars(select(Message).where(Message.step == "welcome-home")).one()


def _count(app, entity, *where) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(entity).where(*where)) or 0


def test_a_receipt_before_the_sid_is_recorded_is_applied_when_it_is(web, enrolled, clock):
    provider = ReportsBeforeAnswering(web, "undelivered", "30006")
    _dispatch(enrolled, clock, provider)
    welcome = _welcome(enrolled)
    assert provider.answers == [200]
    assert provider.callbacks == [f"{PUBLIC_URL}{STATUS}?message={welcome.id}"]
    assert (welcome.status, welcome.error_code) == ("undelivered", "30006")
    assert welcome.provider_id == f"SM{welcome.id:032d}" and welcome.sent_at is not None
    kinds = _count(
        enrolled, Event, Event.message_id == welcome.id, Event.kind.in_(["sent", "undelivered"])
    )
    assert kinds == 2
    # 30006 (a landline) suppresses the number, as a receipt after the recording would.
    assert _count(enrolled, Suppression, Suppression.address == ANA) == 1
    assert _count(enrolled, EarlyReceipt) == 0


def test_an_early_delivered_receipt_ends_delivered_with_one_event_each(web, enrolled, clock):
    _dispatch(enrolled, clock, ReportsBeforeAnswering(web, "delivered"))
    welcome = _welcome(enrolled)
    assert welcome.status == "delivered"
    assert _count(enrolled, Event, Event.message_id == welcome.id, Event.kind == "sent") == 1
    assert _count(enrolled, Event, Event.message_id == welcome.id, Event.kind == "delivered") == 1


def test_a_receipt_naming_our_message_but_another_sid_changes_nothing(web, enrolled, clock):
    _dispatch(enrolled, clock, MemoryChannel("sms"))
    welcome = _welcome(enrolled)
    form = {"MessageSid": "SM" + "f" * 32, "MessageStatus": "failed", "ErrorCode": "30006"}
    assert web.signed_post(f"{STATUS}?message={welcome.id}", form).status_code == 200
    after = _welcome(enrolled)
    assert (after.status, after.error_code) == ("sent", None)
    assert _count(enrolled, EarlyReceipt) == 0
    assert _count(enrolled, Suppression) == 0


def test_a_receipt_naming_a_message_that_is_not_sending_is_not_kept(web, enrolled, clock):
    pending = _welcome(enrolled)  # not claimed yet: no text of ours can be out there
    form = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    assert web.signed_post(f"{STATUS}?message={pending.id}", form).status_code == 200
    assert _welcome(enrolled).status == "pending"
    assert _count(enrolled, EarlyReceipt) == 0


@pytest.mark.parametrize("raw", ["abc", "-1", "1.0", "9" * 40, "%D9%A1", ""])
def test_a_message_parameter_that_is_no_id_names_no_message(web, enrolled, clock, raw):
    form = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "delivered"}
    assert web.signed_post(f"{STATUS}?message={raw}", form).status_code == 200
    assert _count(enrolled, EarlyReceipt) == 0
