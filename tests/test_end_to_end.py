"""End to end on loopback, every part real: the ``aftercare run`` process texts patients through
the fake Twilio API with the real SDK; the fake posts signed status callbacks and the patients'
replies to the real WSGI app under waitress; both processes share one SQLite file (WAL).

Nothing waits for a schedule: messages are due when the daemon starts, or are made due now, and
the test polls for what the other process does, with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest
import requests
from sqlalchemy import select, update

from aftercare.app import App
from aftercare.clock import SystemClock
from aftercare.config import Settings
from aftercare.db import transaction
from aftercare.enrollment import parse_request
from aftercare.models import Message, Patient, Suppression
from aftercare.store.enrollments import enroll_many
from tests.fakes.twilio import FakeMessage, FakeTwilio
from tests.fakes.twilio_callbacks import TwilioWebhooks
from tests.web_server import running

# What Twilio knows us by (and signs); the requests themselves go to the server on loopback.
PUBLIC_URL = "https://aftercare.example.test"
STATUS_URL = f"{PUBLIC_URL}/webhooks/twilio/status"
INBOUND_URL = f"{PUBLIC_URL}/webhooks/twilio/inbound"
CLINIC = "Lakeside Spine"
CLINIC_PHONE = "+1 555 010 0142"
ANA = "+12025550143"
LUIS = "+12025550178"
DEADLINE = 15.0  # seconds for the other process to get somewhere


@dataclass
class World:
    """The running parts: the fake provider, the web server, the daemon, the shared database."""

    path: Path
    twilio: FakeTwilio
    hooks: TwilioWebhooks  # the fake's webhooks to the web server
    reader: App  # this test's own connection to the database
    daemon: subprocess.Popen[str]

    def wait_for(self, what: str, predicate: Callable[[], bool]) -> None:
        """Poll until ``predicate`` holds; fails with the daemon's log if it never does."""
        deadline = time.monotonic() + DEADLINE
        while not predicate():
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                state = "exited" if self.daemon.poll() is not None else "still running"
                log = self.path.with_suffix(".daemon.log").read_text()
                pytest.fail(f"gave up waiting for {what}; the daemon ({state}) said:\n{log}")
            time.sleep(0.05)

    def sms(self, number: str, step: str) -> list[Message]:
        """The SMS rows of ``step`` to ``number``, oldest enrollment first."""
        with self.reader.sessions() as session:
            return list(
                session.scalars(
                    select(Message)
                    .join(Message.enrollment)
                    .join(Patient)
                    .where(Patient.phone == number, Message.step == step, Message.channel == "sms")
                    .order_by(Message.enrollment_id)
                )
            )

    def texts_to(self, number: str) -> list[FakeMessage]:
        return [m for m in self.twilio.messages if m.to == number]

    def inbox(self) -> list[dict[str, object]]:
        """``aftercare inbox --json``, the command staff run."""
        done = subprocess.run(
            [sys.executable, "-m", "aftercare", "inbox", "--json"],
            env=_environ(self.path, self.twilio),
            cwd=self.path.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        rows: list[dict[str, object]] = json.loads(done.stdout)
        return rows


def _settings(path: Path, twilio: FakeTwilio) -> Settings:
    base = Settings(
        database_url=f"sqlite:///{path}",
        quiet_hours=None,
        clinic_name=CLINIC,
        clinic_phone=CLINIC_PHONE,
        public_url=PUBLIC_URL,
    )
    return twilio.settings(base)


def _environ(path: Path, twilio: FakeTwilio) -> dict[str, str]:
    return (
        dict(os.environ)
        | twilio.environ()
        | {
            "AFTERCARE_DATABASE_URL": f"sqlite:///{path}",
            "AFTERCARE_QUIET_HOURS": "off",
            # Texts days apart are made due minutes apart here; the per-number cap (see
            # tests/test_sms_caps.py) would rightly hold them to one a day.
            "AFTERCARE_SMS_DAILY_CAP": "0",
            "AFTERCARE_SMS_WEEKLY_CAP": "0",
            "AFTERCARE_CLINIC_NAME": CLINIC,
            "AFTERCARE_CLINIC_PHONE": CLINIC_PHONE,
            "AFTERCARE_PUBLIC_URL": PUBLIC_URL,
        }
    )


def enroll_due_now(app: App, first_name: str, phone: str, procedure: str = "kyphoplasty") -> int:
    """An SMS-only enrollment discharged just over two hours ago: its welcome text is due."""
    now = app.clock.now()
    fields = {
        "first_name": first_name,
        "phone": phone,
        "timezone": "America/Chicago",
        "procedure": procedure,
        "discharged_at": (now - timedelta(hours=2, minutes=1)).isoformat(),
        "channels": "sms",
    }
    with transaction(app.sessions) as session:
        request = parse_request(fields, app.catalog, now)
        (result,) = enroll_many(session, [request], app.settings, now, "staff:test")
    return result.enrollment_id


def make_due_now(app: App, step: str) -> None:
    """Bring ``step`` forward to now for everyone (what the calendar would do in two days)."""
    now = datetime.now(UTC)
    with transaction(app.sessions) as session:
        session.execute(
            update(Message)
            .where(Message.step == step, Message.status == "pending")
            .values(due_at=now, next_attempt_at=now, expires_at=now + timedelta(hours=1))
        )


@contextmanager
def daemon_process(path: Path, twilio: FakeTwilio) -> Iterator[subprocess.Popen[str]]:
    """``aftercare run`` in its own process, logging to a file beside the database (a pipe
    nobody reads could fill up and stall it); stopped with SIGTERM, which it must obey."""
    log = path.with_suffix(".daemon.log")
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "aftercare", "run", "--poll", "0.5"],
            env=_environ(path, twilio),
            cwd=path.parent,
            stdout=sink,
            stderr=sink,
            text=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, f"the daemon did not stop cleanly:\n{log.read_text()}"


@pytest.fixture
def database(tmp_path: Path, sqlite_template: Path) -> Path:
    """A migrated SQLite file for the daemon, the web server and the test to share."""
    path = tmp_path / "aftercare.db"
    path.write_bytes(sqlite_template.read_bytes())
    return path


@pytest.fixture
def reader(database: Path, fake_twilio: FakeTwilio) -> Iterator[App]:
    """The test's own App on the shared database (enrolling, reading, bringing steps forward)."""
    app = App(_settings(database, fake_twilio), SystemClock(), actor="staff:test")
    yield app
    app.close()


@contextmanager
def started(path: Path, twilio: FakeTwilio, reader: App) -> Iterator[World]:
    """The web server (in this process, under waitress) and the daemon (its own process)."""
    server_app = App(_settings(path, twilio), SystemClock())
    with running(server_app) as server, daemon_process(path, twilio) as daemon:
        hooks = TwilioWebhooks(server.url, twilio.auth_token)
        try:
            yield World(path, twilio, hooks, reader, daemon)
        finally:
            hooks.close()
    server_app.close()


@pytest.fixture
def world(database: Path, fake_twilio: FakeTwilio, reader: App) -> Iterator[World]:
    """Ana and Luis enrolled with their welcome texts due; the server and daemon running; both
    welcome texts sent (the daemon has recorded them)."""
    enroll_due_now(reader, "Ana", ANA)
    enroll_due_now(reader, "Luis", LUIS)
    with started(database, fake_twilio, reader) as world:
        world.wait_for(
            "both welcome texts to be sent and recorded",
            lambda: all(
                [m.status for m in world.sms(number, "welcome-home")] == ["sent"]
                for number in (ANA, LUIS)
            ),
        )
        yield world


def twiml_message(response: requests.Response) -> str | None:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/xml")
    message = ElementTree.fromstring(response.content).find("Message")
    return None if message is None else message.text


def test_receipts_arrive_and_stop_holds_back_the_patients_next_text(world: World) -> None:
    (welcome,) = world.texts_to(ANA)
    (row,) = world.sms(ANA, "welcome-home")
    assert welcome.status_callback == f"{STATUS_URL}?message={row.id}"
    assert CLINIC_PHONE in welcome.body and "Ana" in welcome.body
    assert row.provider_id == welcome.sid

    world.twilio.mark_sent(welcome.sid)
    assert world.hooks.status(welcome, "sent").status_code == 200
    assert world.hooks.status(welcome, "delivered").status_code == 200
    assert [m.status for m in world.sms(ANA, "welcome-home")] == ["delivered"]

    stop = world.hooks.inbound(INBOUND_URL, ANA, "STOP")
    stopped = f"You will get no more texts from {CLINIC}. Reply START to resume."
    assert twiml_message(stop) == stopped
    with world.reader.sessions() as session:
        assert session.scalars(select(Suppression.address)).all() == [ANA]

    # Two days on, the bandage text is due for both; Ana is also enrolled again after her STOP,
    # so the daemon meets a due text to her number and must settle it without sending.
    make_due_now(world.reader, "bandage-off")
    again = enroll_due_now(world.reader, "Ana", ANA, "vertebroplasty")
    world.wait_for(
        "Luis's bandage text to be sent",
        lambda: [m.status for m in world.sms(LUIS, "bandage-off")] == ["sent"],
    )
    world.wait_for(
        "Ana's new welcome text to be settled",
        lambda: [m.status for m in world.sms(ANA, "welcome-home")][-1] != "pending",
    )
    first_bandage_text = world.sms(ANA, "bandage-off")[0]
    assert first_bandage_text.status == "suppressed"
    newest = world.sms(ANA, "welcome-home")[-1]
    assert (newest.enrollment_id, newest.status) == (again, "suppressed")
    assert [m.sid for m in world.texts_to(ANA)] == [welcome.sid], "nothing more went to Ana"
    assert [m.body.split(":")[1].split(".")[0] for m in world.texts_to(LUIS)] == [
        " Welcome home, Luis",
        " You may take the bandage off today",
    ]


def test_help_is_answered_with_the_clinic_phone_and_a_warning_sign_is_urgent(
    world: World,
) -> None:
    help_answer = twiml_message(world.hooks.inbound(INBOUND_URL, ANA, "HELP"))
    assert help_answer is not None and CLINIC_PHONE in help_answer

    fever = "I have a fever and the site is red"
    answer = twiml_message(world.hooks.inbound(INBOUND_URL, LUIS, fever))
    assert answer is not None and CLINIC_PHONE in answer  # this number is not monitored

    (urgent,) = world.inbox()  # HELP is answered automatically: not for staff
    (welcome,) = world.sms(LUIS, "welcome-home")
    with world.reader.sessions() as session:
        luis = session.scalar(select(Patient.id).where(Patient.phone == LUIS))
    assert (urgent["body"], urgent["urgent"], urgent["urgent_reason"]) == (fever, True, "fever")
    assert urgent["patient"] == {
        "id": luis,
        "enrollment_id": welcome.enrollment_id,
        "first_name": "Luis",
        "phone": "+1******0178",
    }
    assert urgent["in_reply_to"] == {
        "message_id": welcome.id,
        "step": "welcome-home",
        "occurrence": welcome.occurrence,
    }


def test_a_receipt_that_arrives_while_the_batch_is_still_sending_is_not_lost(
    database: Path, fake_twilio: FakeTwilio, reader: App
) -> None:
    enroll_due_now(reader, "Ana", ANA)
    enroll_due_now(reader, "Luis", LUIS)
    # Twilio takes both texts at once; it answers the first create at once and the second one
    # three seconds later, so the daemon holds the first SID while it waits to record the batch.
    # The receipts below arrive within that window.
    fake_twilio.stall_next(1, 0.0)
    fake_twilio.stall_next(1, 3.0)
    with started(database, fake_twilio, reader) as world:
        world.wait_for("both texts to reach Twilio", lambda: len(fake_twilio.messages) == 2)
        for message in fake_twilio.messages:  # a landline: Twilio knows within a second
            assert world.hooks.status(message, "undelivered", "30006").status_code == 200
        world.wait_for(
            "both texts to be recorded",
            lambda: all(world.sms(n, "welcome-home")[0].sent_at for n in (ANA, LUIS)),
        )
        statuses = [world.sms(n, "welcome-home")[0].status for n in (ANA, LUIS)]
    assert statuses == ["undelivered", "undelivered"]
