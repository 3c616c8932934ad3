"""Dispatch on SQLite and PostgreSQL: claims, outcomes, retries, expiry, suppression, reconcile.

The channels here are in-memory providers (they keep what they are given or fail like Twilio
would); everything between them and the database is the real code.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from aftercare.app import App
from aftercare.channels.base import ChannelError, Outgoing
from aftercare.channels.memory import MemoryChannel
from aftercare.clock import ManualClock
from aftercare.daemon import next_due
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher, DispatchOptions
from aftercare.enrollment import parse_request
from aftercare.models import Enrollment, Event, Message, Suppression
from aftercare.store import lifecycle
from aftercare.store.enrollments import enroll_many

DISCHARGE = "2026-11-23T10:00-06:00"  # 16:00Z; the welcome is due at 18:00Z


@pytest.fixture
def enroll(app: App, clock: ManualClock) -> Callable[..., int]:
    def make(**overrides: str) -> int:
        fields = {
            "first_name": "Ana",
            "phone": "+12025550143",
            "email": "ana@example.org",
            "timezone": "America/Chicago",
            "procedure": "kyphoplasty",
            "discharged_at": DISCHARGE,
        } | overrides
        request = parse_request(fields, app.catalog, clock.now())
        with transaction(app.sessions) as session:
            (result,) = enroll_many(session, [request], app.settings, clock.now(), "staff:test")
        return result.enrollment_id

    return make


@pytest.fixture
def sms() -> MemoryChannel:
    return MemoryChannel("sms")


@pytest.fixture
def email() -> MemoryChannel:
    return MemoryChannel("email")


@pytest.fixture
def dispatcher(app: App, clock: ManualClock, sms: MemoryChannel, email: MemoryChannel):
    made: list[Dispatcher] = []

    def make(worker: str = "w1", **channels: MemoryChannel) -> Dispatcher:
        d = Dispatcher(
            app.sessions,
            channels or {"sms": sms, "email": email},
            app.catalog,
            app.settings,
            clock,
            worker,
            DispatchOptions(batch_size=10, senders=4),
            rng=random.Random(7),
        )
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()


def statuses(app: App, enrollment_id: int | None = None) -> dict[tuple[str, int, str], str]:
    with app.sessions() as session:
        query = select(Message.step, Message.occurrence, Message.channel, Message.status)
        if enrollment_id is not None:
            query = query.where(Message.enrollment_id == enrollment_id)
        return {(s, o, c): st for s, o, c, st in session.execute(query)}


def message(app: App, step: str, channel: str = "sms", occurrence: int = 0) -> Message:
    with app.sessions() as session:
        return session.scalars(
            select(Message).where(
                Message.step == step, Message.channel == channel, Message.occurrence == occurrence
            )
        ).one()


def welcome_time(clock: ManualClock) -> None:
    clock.set(clock.now().replace(hour=18, minute=0, second=0))


def test_it_sends_what_is_due_once_and_nothing_early(app, clock, enroll, dispatcher, sms, email):
    enroll()
    d = dispatcher()
    assert d.dispatch_due()["sent"] == 0
    welcome_time(clock)
    assert d.dispatch_due()["sent"] == 2
    assert d.dispatch_due()["sent"] == 0
    assert [m.channel for m in sms.sent] == ["sms"] and len(email.sent) == 1
    assert "Welcome home, Ana" in sms.sent[0].text
    assert email.sent[0].subject == "Your care at home after your kyphoplasty"
    row = message(app, "welcome-home")
    assert (row.status, row.attempts, row.provider_id) == ("sent", 1, sms.sent and row.provider_id)
    assert row.sent_at == clock.now()


def test_the_audit_trail_says_who_claimed_each_message_and_when_before_it_was_sent(
    app, clock, enroll, dispatcher
):
    enroll()
    welcome_time(clock)
    dispatcher("host-a:1:w").dispatch_due()
    row = message(app, "welcome-home")
    with app.sessions() as session:
        trail = session.execute(
            select(Event.kind, Event.actor, Event.at, Event.enrollment_id)
            .where(Event.message_id == row.id)
            .order_by(Event.id)
        ).all()
    assert [(kind, actor) for kind, actor, _, _ in trail] == [
        ("claimed", "host-a:1:w"),
        ("sent", "host-a:1:w"),
    ]
    assert {at for _, _, at, _ in trail} == {clock.now()}
    assert {enrollment for *_, enrollment in trail} == {row.enrollment_id}


def test_a_whole_timeline_goes_out_on_time_and_completes_the_enrollment(
    app, clock, enroll, dispatcher, sms
):
    enrollment_id = enroll()
    d = dispatcher()
    while (due := next_due(d)) is not None:
        clock.set(due)
        d.dispatch_due()
    assert set(statuses(app).values()) == {"sent"}
    assert len(sms.sent) == 9
    with app.sessions() as session:
        assert session.get_one(Enrollment, enrollment_id).status == "completed"


def test_a_message_past_its_expiry_is_expired_not_sent(app, clock, enroll, dispatcher, sms):
    enroll()
    # Day 3, 23:00 in Chicago: welcome, bandage-off and the day-3 check are all past expiry.
    clock.set(clock.now() + timedelta(days=3, hours=12))
    tally = dispatcher().dispatch_due()
    assert statuses(app)[("welcome-home", 0, "sms")] == "expired"
    assert statuses(app)[("bandage-off", 0, "sms")] == "expired"
    assert statuses(app)[("soreness-check", 0, "email")] == "expired"
    assert tally["expired"] == 6
    assert not any(m.text.startswith("Spine Care Clinic: Welcome") for m in sms.sent)


def test_a_cancellation_just_before_the_due_time_is_honoured(app, clock, enroll, dispatcher, sms):
    enrollment_id = enroll()
    welcome_time(clock)
    with transaction(app.sessions) as session:
        lifecycle.cancel(session, enrollment_id, "patient declined", "staff:test", clock.now())
    dispatcher().dispatch_due()
    assert sms.sent == []
    assert set(statuses(app).values()) == {"cancelled"}


def test_paused_messages_wait_and_resume(app, clock, enroll, dispatcher, sms):
    enrollment_id = enroll()
    with transaction(app.sessions) as session:
        lifecycle.pause(session, enrollment_id, None, "staff:test", clock.now())
    welcome_time(clock)
    d = dispatcher()
    d.dispatch_due()
    assert sms.sent == []
    with transaction(app.sessions) as session:
        lifecycle.resume(session, enrollment_id, None, "staff:test", clock.now())
    d.dispatch_due()
    assert len(sms.sent) == 1


def test_a_suppressed_number_gets_no_sms_but_email_still_goes(
    app, clock, enroll, dispatcher, sms, email
):
    enroll()
    with transaction(app.sessions) as session:
        session.add(
            Suppression(
                channel="sms", address="+12025550143", reason="STOP", created_at=clock.now()
            )
        )
    welcome_time(clock)
    dispatcher().dispatch_due()
    assert sms.sent == [] and len(email.sent) == 1
    assert statuses(app)[("welcome-home", 0, "sms")] == "suppressed"


def test_a_transient_error_is_retried_with_backoff(app, clock, enroll, dispatcher, sms):
    enroll()
    failures = iter([ChannelError("HTTP 503", permanent=False, code="503")])
    sms.behaviour = lambda _m: next(failures, None)
    welcome_time(clock)
    d = dispatcher()
    d.dispatch_due()
    row = message(app, "welcome-home")
    assert (row.status, row.attempts, row.error_code) == ("pending", 1, "503")
    # backoff base 60 s, first retry between 30 and 60 s later
    assert timedelta(seconds=30) <= row.next_attempt_at - clock.now() <= timedelta(seconds=60)
    clock.advance(timedelta(seconds=20))
    d.dispatch_due()
    assert sms.sent == []
    clock.advance(timedelta(seconds=41))
    d.dispatch_due()
    row = message(app, "welcome-home")
    assert (row.status, row.attempts, len(sms.sent)) == ("sent", 2, 1)


def test_retry_after_from_the_provider_is_honoured(app, clock, enroll, dispatcher, sms):
    enroll()
    failures = iter([ChannelError("HTTP 429", permanent=False, code="429", retry_after=600)])
    sms.behaviour = lambda _m: next(failures, None)
    welcome_time(clock)
    dispatcher().dispatch_due()
    row = message(app, "welcome-home")
    assert row.next_attempt_at - clock.now() >= timedelta(seconds=600)


def test_a_permanent_error_fails_after_one_attempt(app, clock, enroll, dispatcher, sms):
    enroll()
    sms.behaviour = lambda _m: ChannelError("invalid To", permanent=True, code="21211")
    welcome_time(clock)
    d = dispatcher()
    d.dispatch_due()
    clock.advance(timedelta(hours=1))
    d.dispatch_due()
    row = message(app, "welcome-home")
    assert (row.status, row.attempts, row.error_code) == ("failed", 1, "21211")
    assert sms.attempts == 1


def test_attempts_stop_at_the_maximum(app, clock, enroll, dispatcher, sms):
    app.settings = app.settings.with_overrides(max_attempts=3, retry_backoff=1.0)
    enroll()
    sms.behaviour = lambda _m: ChannelError("HTTP 500", permanent=False, code="500")
    welcome_time(clock)
    d = dispatcher()
    for _ in range(6):
        d.dispatch_due()
        clock.advance(timedelta(minutes=1))
    row = message(app, "welcome-home")
    assert (row.status, row.attempts) == ("failed", 3)


def test_an_opt_out_from_the_provider_suppresses_the_number_everywhere(
    app, clock, enroll, dispatcher, sms
):
    # Both welcome texts due at once: without the daily cap both are claimed and sent.
    app.settings = app.settings.with_overrides(sms_daily_cap=0)
    first = enroll()
    second = enroll(procedure="vertebroplasty")
    sms.behaviour = lambda _m: ChannelError(
        "unsubscribed", permanent=True, code="21610", opt_out=True
    )
    welcome_time(clock)
    dispatcher().dispatch_due()
    with app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    for enrollment_id in (first, second):
        sms_statuses = {k: v for k, v in statuses(app, enrollment_id).items() if k[2] == "sms"}
        assert set(sms_statuses.values()) == {"suppressed"}


def test_one_message_that_cannot_render_fails_alone(app, clock, enroll, dispatcher, sms, email):
    enroll()
    enroll(first_name="Bo", phone="+12025550144", email="bo@example.org")
    with transaction(app.sessions) as session:
        session.execute(
            update(Message)
            .where(
                Message.enrollment_id == 1, Message.channel == "sms", Message.step == "welcome-home"
            )
            .values(step="no-such-step")
        )
    welcome_time(clock)
    dispatcher().dispatch_due()
    with app.sessions() as session:
        broken = session.scalars(select(Message).where(Message.step == "no-such-step")).all()
    assert {m.status for m in broken} == {"failed"}
    assert broken[0].error_code == "render"
    assert [m.to for m in sms.sent] == ["+12025550144"]
    assert len(email.sent) == 2


def test_a_channel_that_crashes_does_not_stop_the_others(
    app, clock, enroll, dispatcher, sms, email
):
    enroll()

    def explode(_m: Outgoing) -> ChannelError | None:
        raise RuntimeError("bug in channel")

    sms.behaviour = explode
    welcome_time(clock)
    dispatcher().dispatch_due()
    assert statuses(app)[("welcome-home", 0, "sms")] == "pending"
    assert message(app, "welcome-home").error_code == "exception"
    assert len(email.sent) == 1


def test_messages_for_an_unconfigured_channel_wait(app, clock, enroll, dispatcher, sms):
    enroll()
    welcome_time(clock)
    dispatcher(sms=sms).dispatch_due()
    assert statuses(app)[("welcome-home", 0, "email")] == "pending"
    assert statuses(app)[("welcome-home", 0, "sms")] == "sent"


def _crash_mid_send(app: App, clock: ManualClock) -> None:
    """What a killed dispatcher leaves: rows claimed and marked sending, no outcome."""
    with transaction(app.sessions) as session:
        session.execute(
            update(Message)
            .where(Message.step == "welcome-home")
            .values(status="sending", claimed_by="dead-worker", claimed_at=clock.now(), attempts=1)
        )


def test_reconcile_records_an_sms_the_provider_already_has_without_resending(
    app, clock, enroll, dispatcher, sms, email
):
    enroll()
    welcome_time(clock)
    _crash_mid_send(app, clock)
    with app.sessions() as session:
        sms_id = message(app, "welcome-home").id
    sms.sent.append(
        Outgoing(message_id=sms_id, channel="sms", to="+12025550143", text="x", language="en")
    )
    clock.advance(timedelta(minutes=10))
    tally = dispatcher().reconcile()
    assert tally["sent"] == 2
    assert len(sms.sent) == 1  # found, not sent again
    assert len(email.sent) == 1  # email cannot be looked up: re-sent (same Message-ID)
    with app.sessions() as session:
        kinds = session.scalars(select(Event.reason).where(Event.kind == "sent")).all()
    assert "found at the provider after a crash" in kinds


def test_reconcile_leaves_fresh_claims_alone(app, clock, enroll, dispatcher, sms):
    enroll()
    welcome_time(clock)
    _crash_mid_send(app, clock)
    clock.advance(timedelta(minutes=1))  # within the 5-minute lease: the owner may be alive
    assert dispatcher().reconcile() == {}
    assert statuses(app)[("welcome-home", 0, "sms")] == "sending"


def test_two_dispatchers_at_once_send_each_message_once(app, clock, enroll, dispatcher, sms, email):
    for i in range(40):
        enroll(first_name=f"P{i}", phone=f"+120255501{i:02d}", email=f"p{i}@example.org")
    welcome_time(clock)
    workers = [dispatcher(f"w{i}") for i in range(2)]
    threads = [threading.Thread(target=w.dispatch_due) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [m.message_id for m in sms.sent + email.sent]
    assert len(ids) == 80 and len(set(ids)) == 80


def test_the_welcome_email_carries_the_milestones_as_a_calendar(
    app, clock, enroll, dispatcher, email
):
    enroll(language="es")
    d = dispatcher()
    while (due := next_due(d)) is not None:
        clock.set(due)
        d.dispatch_due()
    welcome, *others = email.sent
    (calendar,) = welcome.attachments
    text = calendar.data.decode()
    assert calendar.filename.endswith(".ics") and "text/calendar" in calendar.content_type
    # Discharged Monday 2026-11-23 (Chicago): bandage off day 2, last day of no lifting day 41.
    assert "DTSTART;VALUE=DATE:20261125" in text and "Hoy puede quitarse el vendaje" in text
    assert "DTSTART;VALUE=DATE:20270103" in text
    assert all(not m.attachments for m in others)


def test_emails_carry_a_signed_unsubscribe_link_when_the_public_url_is_set(
    app, clock, enroll, dispatcher, email
):
    from aftercare.tokens import read_token

    app.settings = app.settings.with_overrides(
        public_url="https://care.example.org", secret_key="s" * 32
    )
    enroll()
    welcome_time(clock)
    dispatcher().dispatch_due()
    (sent,) = email.sent
    assert sent.unsubscribe_url is not None
    base, token = sent.unsubscribe_url.rsplit("/", 1)
    assert base == "https://care.example.org/unsubscribe"
    unsubscribe = read_token("s" * 32, token)
    assert unsubscribe is not None and unsubscribe.channel == "email"
