"""The per-phone SMS cap at claim time (TCPA health-care exemption: one text a day, three a week,
per patient, across enrollments): a text over the cap waits for the next allowed slot inside its
expiry, else it is ``capped`` and counted, never sent and never dropped silently.

Everything runs through ``aftercare run --once`` with the real Twilio SDK against the fake Twilio
server, on SQLite and PostgreSQL; the clock is a manual one, moved to each due time.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from aftercare.app import App
from aftercare.clock import ManualClock, SystemClock
from aftercare.config import Settings, load_settings
from aftercare.errors import SettingsError
from aftercare.models import Event, Message, MessageStatus
from tests.conftest import CliRun
from tests.factories import WELCOME_DUE_AGO, due_texts, enroll_all
from tests.fakes.twilio import FakeTwilio
from tests.test_identity_concurrency import held_back
from tests.test_scale_out import StartDaemon, pg_url, start_daemon, wait_for
from tests.web_server import PUBLIC_URL, TOKEN, running

ANA = "+12025550143"
CHICAGO = ZoneInfo("America/Chicago")
DISCHARGE = "2026-11-23T10:00-06:00"  # 16:00Z; "+2h" is 18:00Z (12:00 in Chicago)
__all__ = ["pg_url", "start_daemon"]  # fixtures, used by name


SMS = "{{{{ clinic_name }}}}: {step}. {{{{ clinic_phone }}}}. STOP to end"


def timeline(name: str, *steps: tuple[str, str, str]) -> str:
    """A one-language SMS timeline; each step is (id, at, expires)."""
    lines = [f"name: {name}", "title: cap test", "version: 1", "languages: [en]", "steps:"]
    for step, at, expires in steps:
        lines += [
            f"  - id: {step}",
            f'    at: "{at}"',
            f'    expires: "{expires}"',
            "    channels: [sms]",
            f'    sms: {{en: "{SMS.format(step=step)}"}}',
        ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def timelines(tmp_path: Path) -> Path:
    folder = tmp_path / "timelines"
    folder.mkdir()
    files = {
        # Two texts an hour apart on discharge day; the second can wait three days.
        "two-a-day": timeline("two-a-day", ("first", "+2h", "3d"), ("second", "+3h", "3d")),
        # The same, but the second is useless after six hours.
        "short-lived": timeline("short-lived", ("first", "+2h", "3d"), ("second", "+3h", "6h")),
        # Days 1 to 4 at 10:00: the fourth is the fourth in 7 days; it can wait a week.
        "four-days": timeline(
            "four-days",
            ("day-1", "day 1 10:00", "7d"),
            ("day-2", "day 2 10:00", "7d"),
            ("day-3", "day 3 10:00", "7d"),
            ("day-4", "day 4 10:00", "7d"),
        ),
    }
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def settings(db_url: str, fake_twilio: FakeTwilio, timelines: Path) -> Settings:
    """The test App's settings (conftest's ``app`` and ``run`` use them): the fake Twilio, the
    timelines above, the default caps and quiet hours."""
    return fake_twilio.settings(Settings(database_url=db_url, schedules_dir=timelines))


def enroll(run: CliRun, procedure: str, discharged_at: str = DISCHARGE, **extra: str) -> int:
    args = ["enroll", "--first-name", "Ana", "--phone", ANA, "--tz", "America/Chicago"]
    args += ["--procedure", procedure, "--discharged-at", discharged_at, "--channels", "sms"]
    for flag, value in extra.items():
        args += [f"--{flag}", value]
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    enrollment_id: int = json.loads(result.stdout)["id"]
    return enrollment_id


def dispatch_at(run: CliRun, clock: ManualClock, at: datetime) -> None:
    clock.set(at)
    result = run("run", "--once")
    assert result.exit_code == 0, result.output


def row(app: App, step: str) -> Message:
    with app.sessions() as session:
        return session.scalars(select(Message).where(Message.step == step)).one()


def kinds(app: App, message_id: int) -> list[str]:
    with app.sessions() as session:
        query = select(Event.kind).where(Event.message_id == message_id).order_by(Event.id)
        return list(session.scalars(query))


def event(app: App, message_id: int, kind: str) -> Event:
    with app.sessions() as session:
        query = select(Event).where(Event.message_id == message_id, Event.kind == kind)
        return session.scalars(query).one()


def texts_to(fake: FakeTwilio, number: str) -> list[str]:
    return [m.body for m in fake.messages if m.to == number]


# --- the daily cap ---------------------------------------------------------------------------


def test_a_second_text_on_the_same_local_day_waits_for_the_next_morning(
    run: CliRun, app: App, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    enroll(run, "two-a-day")
    dispatch_at(run, clock, datetime(2026, 11, 23, 18, 0, tzinfo=UTC))

    dispatch_at(run, clock, datetime(2026, 11, 23, 19, 0, tzinfo=UTC))

    assert len(texts_to(fake_twilio, ANA)) == 1
    second = row(app, "second")
    assert second.status == MessageStatus.PENDING
    # 08:00 in Chicago the next day: the end of quiet hours, the first moment of the next day.
    assert second.next_attempt_at == datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    deferred = event(app, second.id, "deferred")
    assert deferred.reason is not None and "1 SMS a day" in deferred.reason

    dispatch_at(run, clock, datetime(2026, 11, 24, 14, 0, tzinfo=UTC))

    assert [body.split(": ")[1] for body in texts_to(fake_twilio, ANA)] == [
        "first. +1 555 010 0199. STOP to end",
        "second. +1 555 010 0199. STOP to end",
    ]
    assert row(app, "second").status == MessageStatus.SENT


def test_a_text_that_cannot_wait_inside_its_expiry_is_capped_counted_and_logged(
    run: CliRun, app: App, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    enroll(run, "short-lived")
    dispatch_at(run, clock, datetime(2026, 11, 23, 18, 0, tzinfo=UTC))

    dispatch_at(run, clock, datetime(2026, 11, 23, 19, 0, tzinfo=UTC))

    assert len(texts_to(fake_twilio, ANA)) == 1
    second = row(app, "second")
    assert second.status == MessageStatus.CAPPED
    assert kinds(app, second.id)[-1] == "capped"
    stats = json.loads(run("stats", "--json").stdout)
    assert {"status": "capped", "channel": "sms", "count": 1} in stats["messages"]
    assert "capped" in run("patients", "show", "1").stdout


def test_the_cap_counts_the_texts_of_every_enrollment_to_the_number(
    run: CliRun, app: App, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    enroll(run, "kyphoplasty")
    enroll(run, "vertebroplasty")  # the same day: both welcome texts are due at 18:00Z

    dispatch_at(run, clock, datetime(2026, 11, 23, 18, 0, tzinfo=UTC))

    assert len(texts_to(fake_twilio, ANA)) == 1
    with app.sessions() as session:
        welcome = Counter(
            session.scalars(select(Message.status).where(Message.step == "welcome-home"))
        )
    # The next allowed slot (08:00 tomorrow) is after the welcome text's 18 hours.
    assert welcome == Counter({MessageStatus.SENT: 1, MessageStatus.CAPPED: 1})


# --- the weekly cap --------------------------------------------------------------------------


def test_a_fourth_text_in_seven_days_waits_until_the_first_is_a_week_old(
    run: CliRun, app: App, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    enroll(run, "four-days")
    for day in (24, 25, 26, 27):
        dispatch_at(run, clock, datetime(2026, 11, day, 16, 0, tzinfo=UTC))  # 10:00 in Chicago

    assert len(texts_to(fake_twilio, ANA)) == 3
    fourth = row(app, "day-4")
    assert fourth.status == MessageStatus.PENDING
    # Texts on the 24th, 25th and 26th: the 1st of December is the first day whose 7 days
    # (Nov 25 - Dec 1) hold fewer than three.
    assert fourth.next_attempt_at == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    reason = event(app, fourth.id, "deferred").reason
    assert reason is not None and "3 SMS in 7 days" in reason


def test_a_patient_in_two_timelines_never_gets_more_than_the_caps_allow(
    run: CliRun, app: App, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    """The issue's patient: kyphoplasty on 11/23, vertebroplasty on 11/30. Each timeline keeps
    the caps on its own; together they broke both (two texts on 12/8, four from 11/30 to 12/6)."""
    fake_twilio.now = clock.now
    enroll(run, "kyphoplasty")
    replay(run, app, clock, until=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))
    enroll(run, "vertebroplasty", discharged_at="2026-11-30T10:00-06:00")
    replay(run, app, clock, until=datetime(2027, 2, 1, tzinfo=UTC))

    days = [m.date_created.astimezone(CHICAGO).date() for m in fake_twilio.messages]
    assert max(Counter(days).values()) <= 1
    assert most_in_seven_days(days) <= 3
    with app.sessions() as session:
        statuses = Counter(session.scalars(select(Message.status)))
    # Every text is accounted for: sent, or capped (and counted); none waits, none vanished.
    assert set(statuses) == {MessageStatus.SENT, MessageStatus.CAPPED}
    assert sum(statuses.values()) == 18
    assert statuses[MessageStatus.SENT] == len(fake_twilio.messages)


def replay(run: CliRun, app: App, clock: ManualClock, until: datetime) -> None:
    """Run the dispatcher at each due time up to ``until``, as the daemon would wake."""
    while True:
        with app.sessions() as session:
            due = session.scalar(
                select(func.min(Message.next_attempt_at)).where(
                    Message.status == MessageStatus.PENDING
                )
            )
        if due is None or due > until:
            clock.set(max(clock.now(), until))
            return
        dispatch_at(run, clock, max(clock.now(), due))


def most_in_seven_days(days: list[date]) -> int:
    return max(sum(1 for d in days if 0 <= (day - d).days < 7) for day in days)


# --- settings and exceptions -----------------------------------------------------------------


def test_with_both_caps_at_zero_every_text_goes_out(
    run: CliRun, app: App, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    app.settings = app.settings.with_overrides(sms_daily_cap=0, sms_weekly_cap=0)
    enroll(run, "two-a-day")

    dispatch_at(run, clock, datetime(2026, 11, 23, 19, 0, tzinfo=UTC))

    assert len(texts_to(fake_twilio, ANA)) == 2


def test_a_higher_daily_cap_lets_two_texts_out_on_one_day(
    run: CliRun, app: App, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    app.settings = app.settings.with_overrides(sms_daily_cap=2)
    enroll(run, "two-a-day")

    dispatch_at(run, clock, datetime(2026, 11, 23, 19, 0, tzinfo=UTC))

    assert len(texts_to(fake_twilio, ANA)) == 2


def test_the_caps_are_on_by_default_and_read_from_the_environment() -> None:
    defaults = load_settings({})
    assert (defaults.sms_daily_cap, defaults.sms_weekly_cap) == (1, 3)

    chosen = load_settings({"AFTERCARE_SMS_DAILY_CAP": "0", "AFTERCARE_SMS_WEEKLY_CAP": "5"})
    assert (chosen.sms_daily_cap, chosen.sms_weekly_cap) == (0, 5)


@pytest.mark.parametrize("name", ["AFTERCARE_SMS_DAILY_CAP", "AFTERCARE_SMS_WEEKLY_CAP"])
@pytest.mark.parametrize("value", ["-1", "one", "1.5"])
def test_a_bad_cap_setting_is_refused_by_name(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name}: "):
        load_settings({name: value})


def test_an_answer_to_the_patient_is_not_capped(
    run: CliRun, app: App, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    """HELP after the day's one reminder: an answer to what the patient asked, not a reminder."""
    enroll(run, "kyphoplasty")
    dispatch_at(run, clock, datetime(2026, 11, 23, 18, 0, tzinfo=UTC))
    assert len(texts_to(fake_twilio, ANA)) == 1
    app.settings = app.settings.with_overrides(twilio_auth_token=TOKEN, public_url=PUBLIC_URL)
    with running(app) as web:
        response = web.signed_post(
            "/webhooks/twilio/inbound",
            {"MessageSid": "SM" + "1" * 32, "From": ANA, "To": "+15005550006", "Body": "HELP"},
        )

    assert response.status_code == 200
    answer = ElementTree.fromstring(response.content).find("Message")
    assert answer is not None and answer.text is not None
    assert "Spine Care Clinic" in answer.text


# --- several daemons on PostgreSQL -------------------------------------------------------------


@pytest.mark.postgres
def test_two_daemons_claiming_at_once_never_both_send_a_numbers_one_text_of_the_day(
    pg_url: str, start_daemon: StartDaemon, fake_twilio: FakeTwilio
) -> None:
    """150 patients, each in both timelines, both welcome texts due now. The daemons' first
    claims are held at the same instant (the event table takes no inserts until both wait), so
    each claims while the other's claim is still open: only the database can keep them apart."""
    now = datetime.now(UTC)
    kypho = due_texts(150, now - WELCOME_DUE_AGO)
    verte = due_texts(150, now - WELCOME_DUE_AGO + timedelta(minutes=1), procedure="vertebroplasty")
    reader = App(Settings(database_url=pg_url, quiet_hours=None), SystemClock())
    try:
        enroll_all(reader, kypho + verte, now)
        with held_back(pg_url, "event", processes=2):
            start_daemon(pg_url, fake_twilio)
            start_daemon(pg_url, fake_twilio)
        wait_for(
            lambda: (
                welcome_statuses(reader)[MessageStatus.SENDING] == 0
                and welcome_statuses(reader)[MessageStatus.SENT] >= 150
            ),
            what="every number's first text sent",
        )
    finally:
        reader.close()

    per_number = Counter(m.to for m in fake_twilio.messages)
    assert len(per_number) == 150
    assert set(per_number.values()) == {1}


def welcome_statuses(app: App) -> Counter[str]:
    with app.sessions() as session:
        query = select(Message.status).where(Message.step == "welcome-home")
        return Counter(session.scalars(query))
