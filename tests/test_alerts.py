"""Alerts: every worklist item is a row with a lifecycle (open -> acknowledged -> resolved, with
who, when and a note), opened once per cause by the code paths that see it; urgent ones nobody
acknowledges reach on-call through the real daemon pass (the twilio SDK against the fake Twilio,
SMTP against the fake relay), once a period, once per step across daemons."""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from aftercare import db, inbox
from aftercare.app import App
from aftercare.channels.memory import MemoryChannel
from aftercare.channels.registry import provider_channels
from aftercare.clock import ManualClock
from aftercare.config import Settings, load_settings
from aftercare.daemon import catch_up
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher
from aftercare.errors import SettingsError
from aftercare.models import Alert, AlertEscalation
from aftercare.store import receipts
from tests.conftest import NOW, CliRun, throwaway_postgres_database
from tests.factories import ANA, enroll
from tests.fakes.smtp import FakeSmtpServer
from tests.fakes.twilio import FakeTwilio

ON_CALL = "+13125550100"
ON_CALL_EMAIL = "oncall@clinic.example"
PUBLIC = "https://care.clinic.example"


@pytest.fixture
def on_call_app(
    db_url: str, fake_twilio: FakeTwilio, smtp_server: FakeSmtpServer, clock: ManualClock
) -> Iterator[App]:
    """An App whose channels are the fake Twilio and SMTP servers, with on-call contacts."""
    settings = fake_twilio.settings(
        Settings(database_url=db_url),
        smtp_url=smtp_server.url,
        email_from="aftercare@clinic.example",
        oncall_phone=ON_CALL,
        oncall_email=ON_CALL_EMAIL,
        public_url=PUBLIC,
        escalate_after=timedelta(minutes=30),
    )
    application = App(settings, clock, actor="staff:test")
    yield application
    application.close()


def texts(app: App, body: str, number: str = ANA["phone"]) -> str | None:
    """The patient texts ``body``: the inbound webhook's unit of work."""
    return inbox.receive(app, {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": body})


def alerts_json(run: CliRun, *args: str) -> list[dict[str, object]]:
    result = run("alerts", "--json", *args)
    assert result.exit_code == 0, result.output
    rows: list[dict[str, object]] = json.loads(result.output)
    return rows


def daemon_pass(app: App, worker: str = "daemon-1") -> int:
    """One pass of the daemon (reconcile, dispatch, escalate); the number of escalation steps."""
    dispatcher = Dispatcher(
        app.sessions,
        provider_channels(app.settings),
        app.catalog,
        app.settings,
        app.clock,
        worker,
        rng=random.Random(1),
    )
    try:
        return catch_up(dispatcher, app.clock.now(), single=False)["escalated"]
    finally:
        dispatcher.close()


def on_call_texts(fake_twilio: FakeTwilio) -> list[str]:
    return [m.body for m in fake_twilio.messages if m.to == ON_CALL]


# --- the lifecycle -------------------------------------------------------------------------------


def test_a_reply_that_needs_staff_opens_one_alert_of_its_kind(app, run):
    enroll(app)
    for body in ("I have a fever", "9", "Can I shower?", "STOP", "HELP", "START", "2"):
        texts(app, body)
    rows = alerts_json(run)
    assert [(r["kind"], r["urgent"], r["state"]) for r in rows] == [
        ("pain_rising", True, "open"),
        ("urgent_reply", True, "open"),
        ("opt_out", False, "open"),
        ("reply", False, "open"),
    ]
    assert all(r["patient"]["first_name"] == "Ana" for r in rows)  # type: ignore[index]


def test_the_same_reply_delivered_twice_opens_one_alert(app, run):
    enroll(app)
    form = {"MessageSid": "SM" + "a" * 32, "From": ANA["phone"], "Body": "I am bleeding"}
    inbox.receive(app, form)
    inbox.receive(app, form)
    assert len(alerts_json(run)) == 1


def test_staff_acknowledge_then_resolve_an_alert_and_the_times_are_measured(app, run, clock):
    enroll(app)
    texts(app, "I have a fever")
    (alert,) = alerts_json(run)
    clock.advance(timedelta(minutes=12))
    acked = run("--as", "nurse kim", "alerts", "ack", str(alert["id"]), "--note", "calling her")
    assert acked.exit_code == 0 and "acknowledged" in acked.output
    clock.advance(timedelta(minutes=20))
    done = run("alerts", "resolve", str(alert["id"]), "--note", "told her to come in")
    assert done.exit_code == 0 and "resolved" in done.output
    assert alerts_json(run) == []
    (row,) = alerts_json(run, "--all")
    assert row["state"] == "resolved"
    assert (row["acknowledged_by"], row["acknowledge_note"]) == ("staff:test", "calling her")
    assert (row["resolved_by"], row["resolve_note"]) == ("staff:test", "told her to come in")
    assert (row["seconds_to_acknowledge"], row["seconds_to_resolve"]) == (720, 1920)
    audit = json.loads(run("audit", "--since", "1d", "--json").output)
    kinds = [e["kind"] for e in audit if e["kind"].startswith("alert_")]
    assert kinds == ["alert_opened", "alert_acknowledged", "alert_resolved"]


def test_acknowledging_twice_changes_nothing_the_second_time(app, run, clock):
    enroll(app)
    texts(app, "Can I drive?")
    (alert,) = alerts_json(run)
    run("alerts", "ack", str(alert["id"]))
    clock.advance(timedelta(minutes=5))
    again = run("alerts", "ack", str(alert["id"]))
    assert again.exit_code == 0 and "already acknowledged" in again.output
    (row,) = alerts_json(run)
    assert row["seconds_to_acknowledge"] == 0


def test_resolving_needs_a_note_and_a_known_alert(app, run, row_counts):
    enroll(app)
    texts(app, "Can I drive?")
    (alert,) = alerts_json(run)
    before = row_counts()
    blank = run("alerts", "resolve", str(alert["id"]), "--note", "   ")
    assert blank.exit_code == 1
    assert blank.output.strip() == "error: --note: is empty: say how the alert was dealt with"
    unknown = run("alerts", "ack", "999")
    assert (unknown.exit_code, unknown.output.strip()) == (1, "error: id: no alert 999")
    missing = run("alerts", "resolve", str(alert["id"]))
    assert missing.exit_code == 2 and "--note" in missing.output
    assert row_counts() == before


def test_an_undelivered_text_opens_a_delivery_failure_alert_once(app, run, clock):
    enrollment_id = enroll(app)
    clock.set(NOW.replace(hour=19))  # the welcome text is due
    channels = {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")}
    dispatcher = Dispatcher(app.sessions, channels, app.catalog, app.settings, clock, "w")
    dispatcher.dispatch_due()
    dispatcher.close()
    patient = json.loads(run("patients", "show", str(enrollment_id), "--json").output)
    sent = next(m for m in patient["messages"] if m["status"] == "sent")
    for _ in range(2):  # Twilio may post the same callback twice
        with transaction(app.sessions) as session:
            receipts.apply_status(session, sent["provider_id"], "undelivered", "30003", NOW)
    (row,) = alerts_json(run)
    assert (row["kind"], row["reason"], row["urgent"]) == (
        "delivery_failure",
        "undelivered (error 30003)",
        False,
    )
    assert row["patient"]["enrollment_id"] == enrollment_id  # type: ignore[index]


# --- escalation ----------------------------------------------------------------------------------


def test_an_unacknowledged_urgent_reply_reaches_on_call_once_a_period_until_acknowledged(
    on_call_app, fake_twilio, smtp_server, clock
):
    run = CliRun(on_call_app)
    enroll(on_call_app)
    texts(on_call_app, "I have a fever and the site is bleeding")
    (alert,) = alerts_json(run)
    clock.advance(timedelta(minutes=29))
    assert daemon_pass(on_call_app) == 0
    assert on_call_texts(fake_twilio) == []

    clock.advance(timedelta(minutes=1))
    assert daemon_pass(on_call_app) == 1
    assert daemon_pass(on_call_app) == 0  # the same step is not taken twice
    (first,) = on_call_texts(fake_twilio)
    assert f"{PUBLIC}/alerts/{alert['id']}" in first
    assert "Ana" not in first and "fever" not in first and "bleeding" not in first
    (mail,) = [m for m in smtp_server.messages if ON_CALL_EMAIL in m.rcpt_tos]
    body = mail.message.get_body(("plain",))
    assert body is not None and first in body.get_content() and "fever" not in body.get_content()

    clock.advance(timedelta(minutes=30))
    assert daemon_pass(on_call_app) == 1
    assert len(on_call_texts(fake_twilio)) == 2
    assert "reminder 2" in on_call_texts(fake_twilio)[-1]

    assert run("alerts", "ack", str(alert["id"])).exit_code == 0
    clock.advance(timedelta(hours=2))
    assert daemon_pass(on_call_app) == 0
    assert len(on_call_texts(fake_twilio)) == 2
    (row,) = alerts_json(run)
    assert (row["state"], row["escalations"], row["next_escalation_at"]) == (
        "acknowledged",
        2,
        None,
    )
    audit = json.loads(run("audit", "--since", "1d", "--json").output)
    steps = [e["detail"]["step"] for e in audit if e["kind"] == "alert_escalated"]
    assert steps == [1, 2]


def test_a_question_is_never_escalated(on_call_app, fake_twilio, clock):
    enroll(on_call_app)
    texts(on_call_app, "When can I drive?")
    clock.advance(timedelta(hours=3))
    assert daemon_pass(on_call_app) == 0
    assert on_call_texts(fake_twilio) == []


def both_daemons_pass(apps: list[App]) -> list[int]:
    """A pass of each daemon at the same moment, in threads; the steps each took."""
    start = threading.Barrier(len(apps))
    taken: list[int] = []

    def one_daemon(app: App, name: str) -> None:
        start.wait()
        taken.append(daemon_pass(app, name))

    threads = [
        threading.Thread(target=one_daemon, args=(app, f"daemon-{n}")) for n, app in enumerate(apps)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return taken


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own (fails, never skips, without one)."""
    with throwaway_postgres_database() as url:
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        yield url


@pytest.mark.postgres
def test_two_daemons_on_postgresql_escalate_each_step_once(pg_url, fake_twilio, clock):
    settings = fake_twilio.settings(
        Settings(database_url=pg_url), oncall_phone=ON_CALL, public_url=PUBLIC
    )
    apps = [App(settings, clock), App(settings, clock)]
    try:
        patients = 30
        for i in range(patients):
            phone = f"+1202555{i:04d}"
            enroll(apps[0], phone=phone, first_name=f"P{i}")
            texts(apps[0], "new numbness in my legs", number=phone)
        for _period in range(2):
            clock.advance(settings.escalate_after)
            taken = both_daemons_pass(apps)
            assert sum(taken) == patients
        assert len(on_call_texts(fake_twilio)) == 2 * patients
        with apps[0].sessions() as session:
            steps = session.scalar(select(func.count()).select_from(AlertEscalation))
            escalations = session.scalars(select(Alert.escalations)).all()
        assert steps == 2 * patients and set(escalations) == {2}
    finally:
        for app in apps:
            app.close()


def test_the_escalation_period_is_a_duration_and_a_bad_one_is_named():
    with pytest.raises(SettingsError, match="AFTERCARE_ESCALATE_AFTER: 'soon' is not a duration"):
        load_settings({"AFTERCARE_ESCALATE_AFTER": "soon"})
    assert load_settings({"AFTERCARE_ESCALATE_AFTER": "15m"}).escalate_after == timedelta(
        minutes=15
    )
    assert load_settings({}).escalate_after == timedelta(minutes=30)


# --- silence -------------------------------------------------------------------------------------

CHECK_IN_SENT = datetime(2026, 11, 26, 16, 0, tzinfo=UTC)  # day 3, 10:00 in Chicago


def test_an_unanswered_check_in_opens_exactly_one_no_answer_alert_after_its_grace(
    on_call_app, fake_twilio, clock
):
    run = CliRun(on_call_app)
    enroll(on_call_app)
    clock.set(CHECK_IN_SENT)
    daemon_pass(on_call_app)
    assert any("Reply 0-10" in m.body for m in fake_twilio.messages if m.to == ANA["phone"])
    clock.advance(timedelta(hours=23, minutes=59))
    daemon_pass(on_call_app)
    assert alerts_json(run) == []
    clock.advance(timedelta(minutes=1))
    daemon_pass(on_call_app)
    daemon_pass(on_call_app, "daemon-2")
    (row,) = alerts_json(run)
    assert (row["kind"], row["reason"], row["urgent"]) == (
        "no_answer",
        "no pain score within 1d",
        False,
    )


def test_a_check_in_answered_with_a_score_opens_no_alert(on_call_app, clock):
    run = CliRun(on_call_app)
    enroll(on_call_app)
    clock.set(CHECK_IN_SENT)
    daemon_pass(on_call_app)
    clock.advance(timedelta(hours=3))
    texts(on_call_app, "4")
    clock.advance(timedelta(days=2))
    daemon_pass(on_call_app)
    assert alerts_json(run) == []


def test_an_answer_out_of_range_gets_one_re_ask_with_the_scale_then_goes_to_the_worklist(
    on_call_app, clock
):
    run = CliRun(on_call_app)
    enroll(on_call_app)
    clock.set(CHECK_IN_SENT)
    daemon_pass(on_call_app)
    clock.advance(timedelta(hours=1))
    answer = texts(on_call_app, "12")
    assert answer is not None and "0 (none) to 10 (worst)" in answer
    assert alerts_json(run) == []
    clock.advance(timedelta(minutes=5))
    second = texts(on_call_app, "a lot")
    assert second is None or "0 (none) to 10 (worst)" not in second
    (row,) = alerts_json(run)
    assert (row["kind"], row["reason"]) == ("reply", "not a 0-10 pain score, after asking again")


def test_a_question_in_answer_to_the_check_in_goes_to_staff_at_once(on_call_app, clock):
    run = CliRun(on_call_app)
    enroll(on_call_app)
    clock.set(CHECK_IN_SENT)
    daemon_pass(on_call_app)
    answer = texts(on_call_app, "Is it normal to be sore?")
    assert answer is None or "0 (none)" not in answer
    assert [r["kind"] for r in alerts_json(run)] == ["reply"]
