"""The crash matrix: the real daemon process (``aftercare run``) killed with SIGKILL at twenty
points of its work, then started again; after the restart every message is delivered exactly
once and the database says so.

Internal points are traps set by ``python -m tests.crashpoints POINT N -- run ...`` (a launcher
that wraps one real function with a kill and runs the real CLI); external ones are fired by the
fake servers, which kill the daemon while they hold its request. Exactly once means: each SMS
reaches the fake Twilio once, recorded with the sid Twilio gave it; each email reaches the SMTP
server once, or twice with the same Message-ID when the kill came after the relay took it (SMTP
cannot be asked what it has); and no row is left ``sending``.

On SQLite the daemon is the only dispatcher, so a restarted one takes over every claim made
before it started at once (``catch_up`` with ``stale_before=started_at``): no lease to wait out.

Last, a crash loop longer than the SMS lookup's clock-skew allowance (10 minutes): it texted
every patient twice until reconciliation looked for Twilio's records since the due time instead
of since the previous claim, which a crashed reconciliation had moved on (claims.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from aftercare import db
from aftercare.app import App
from aftercare.clock import SystemClock
from aftercare.config import Settings
from aftercare.models import Enrollment, Message, Patient
from aftercare.statuses import MessageStatus
from tests.crashpoints import POINTS
from tests.factories import due_texts, email, enroll_all, phone
from tests.fakes.smtp import FakeSmtpServer
from tests.fakes.twilio import FakeTwilio

REPO = Path(__file__).resolve().parent.parent
EMAIL_FROM = "care@clinic.example"
STEP = "welcome-home"  # 2 hours after discharge: the one step due at once
DEADLINE = 60.0  # seconds for any one process; a point that is never reached fails here


@dataclass(frozen=True)
class Cohort:
    """Patients enrolled with their welcome message due now, on these channels."""

    channels: str  # "sms", "email" or "sms,email"
    patients: int
    due_ago: timedelta = timedelta(minutes=1)


TEXTS = Cohort("sms", 20)
TEXTS_IN_TWO_BATCHES = Cohort("sms", 130)  # a claim takes 100: batch 2 holds the last 30
EMAILS = Cohort("email", 12)
BOTH = Cohort("sms,email", 10)


@dataclass(frozen=True)
class Kill:
    """Where a run dies: a trap of tests.crashpoints, or ``twilio:...``/``smtp:...`` fired by
    the fake server; on the ``n``-th time it is reached."""

    where: str
    n: int = 1


@dataclass(frozen=True)
class Point:
    cohort: Cohort
    kill: Kill
    # A second kill, of the first restart while it reconciles the first one's claims.
    again: Kill | None = None
    senders: int = 8
    # What the first kill must have left, to show it hit where it was meant to: rows still
    # ``sending`` (claims for reconciliation), and how many texts and emails had reached the
    # fakes, when that is certain.
    left_sending: bool | None = True  # None: either, by timing
    texts_before: int | None = None
    emails_before: int | None = None


POINTS_OF_THE_MATRIX = {
    # Claiming.
    "before the claim commits": Point(
        TEXTS, Kill("claim:before-commit"), left_sending=False, texts_before=0
    ),
    "after the claim commits, before any provider call, SMS and email": Point(
        BOTH, Kill("claim:after-commit"), texts_before=0, emails_before=0
    ),
    # SMS provider calls.
    "while Twilio holds a create request, which it then takes": Point(
        TEXTS, Kill("twilio:create-received", 5)
    ),
    "after Twilio took a text, before its answer is written": Point(
        TEXTS, Kill("twilio:create-accepted", 5)
    ),
    "after the seventh text was accepted, one sender": Point(
        TEXTS, Kill("sms-send:after", 7), senders=1, texts_before=7
    ),
    # Recording. Outcomes are recorded as they come back, at the latest half a second after the
    # first of them: on a busy machine the first recording may hold only part of the cohort, so
    # how many are out at these kills is not fixed.
    "after the batch is back from Twilio, before recording": Point(TEXTS, Kill("record:before")),
    "during the recording transaction, before its commit": Point(
        TEXTS, Kill("record:before-commit")
    ),
    "during the recording of SMS and email, before its commit": Point(
        BOTH, Kill("record:before-commit")
    ),
    # Later batches. The second is claimed while the first is still being sent (the pipeline
    # keeps the senders busy), so how many texts are out at these kills depends on timing.
    "after the first recording committed, the second batch claimed": Point(
        TEXTS_IN_TWO_BATCHES, Kill("record:after-commit"), left_sending=None
    ),
    "after the second batch was claimed, the first still in flight": Point(
        TEXTS_IN_TWO_BATCHES, Kill("claim:after-commit", 2)
    ),
    "while Twilio holds a create request of the second batch": Point(
        TEXTS_IN_TWO_BATCHES, Kill("twilio:create-received", 110)
    ),
    # The SMTP conversation.
    "after MAIL FROM was accepted": Point(EMAILS, Kill("smtp-mail:after", 3)),
    "after RCPT TO was accepted": Point(EMAILS, Kill("smtp-rcpt:after", 3)),
    "during DATA, before the message is sent": Point(EMAILS, Kill("smtp-payload:before", 3)),
    "after the relay took the DATA, before its reply": Point(EMAILS, Kill("smtp:DATA", 3)),
    "after the fourth email was accepted, one sender": Point(
        EMAILS, Kill("email-send:after", 4), senders=1, emails_before=4
    ),
    # A second crash, during the reconciliation after the restart.
    "again while Twilio holds a reconciliation lookup": Point(
        TEXTS, Kill("twilio:create-accepted", 8), again=Kill("twilio:list-received", 3)
    ),
    "again while the reconciliation's re-sends are in flight": Point(
        TEXTS,
        Kill("claim:after-commit"),
        again=Kill("twilio:create-received", 5),
        texts_before=0,
    ),
    "again during the reconciliation's recording, before its commit": Point(
        TEXTS, Kill("sms-send:after", 5), again=Kill("record:before-commit")
    ),
    "again after the reconciliation took over emails the relay had": Point(
        EMAILS, Kill("smtp:DATA", 3), again=Kill("reconcile-claim:after-commit")
    ),
}


# --- patients ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def cohort_databases(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Cohort, Path]]:
    """A database for each cohort, enrolled once and copied for each point (enrolling 130
    patients' whole timelines takes longer than copying a file)."""
    folder = tmp_path_factory.mktemp("cohorts")
    made: dict[Cohort, Path] = {}
    for number, cohort in enumerate({p.cohort for p in POINTS_OF_THE_MATRIX.values()}):
        path = folder / f"cohort-{number}.db"
        shutil.copy(sqlite_template, path)
        enroll_due_now(path, cohort)
        made[cohort] = path
    yield made


def enroll_due_now(path: Path, cohort: Cohort) -> None:
    app = App(Settings(database_url=f"sqlite:///{path}", quiet_hours=None), SystemClock())
    try:
        discharged = app.clock.now() - timedelta(hours=2) - cohort.due_ago
        enroll_all(app, due_texts(cohort.patients, discharged, channels=cohort.channels))
    finally:
        app.close()  # the last connection checkpoints the WAL: the file alone is the database


# --- the daemon processes ------------------------------------------------------------------------


@dataclass
class Runs:
    """Starts ``aftercare run`` processes on one database and the fakes; each one's output goes
    to a log file, so a chatty process never blocks on a full pipe."""

    folder: Path
    database: Path
    twilio: FakeTwilio
    smtp: FakeSmtpServer
    senders: int
    started: list[tuple[subprocess.Popen[str], Path]]

    def start(self, kill: Kill | None, *args: str) -> subprocess.Popen[str]:
        command = ["run", "--senders", str(self.senders), *args]
        if kill is not None and not kill.where.startswith(("twilio:", "smtp:")):
            launcher = ["-m", "tests.crashpoints", kill.where, str(kill.n), "--", *command]
        else:
            launcher = ["-m", "aftercare", *command]
        log = self.folder / f"run-{len(self.started)}.log"
        environment = (
            os.environ
            | self.twilio.environ()
            | {
                "AFTERCARE_DATABASE_URL": f"sqlite:///{self.database}",
                "AFTERCARE_QUIET_HOURS": "off",
                "AFTERCARE_SMTP_URL": self.smtp.url,
                "AFTERCARE_EMAIL_FROM": EMAIL_FROM,
                "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
            }
        )
        with log.open("w") as output:
            process = subprocess.Popen(
                [sys.executable, *launcher],
                env=environment,
                cwd=self.folder,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.started.append((process, log))
        if kill is not None and kill.where.startswith(("twilio:", "smtp:")):
            self.arm_fake(kill, process)
        return process

    def arm_fake(self, kill: Kill, victim: subprocess.Popen[str]) -> None:
        server, what = kill.where.split(":")
        trigger = KillOnNth(victim, kill.n)
        if server == "twilio":
            kind, _, moment = what.partition("-")
            if moment == "received":
                self.twilio.on_request = lambda seen: trigger() if seen == kind else None
            else:
                self.twilio.on_accepted = lambda _message: trigger()
        else:
            self.smtp.on_reply = lambda command: trigger() if command == what else None

    def disarm(self) -> None:
        self.twilio.on_request = self.twilio.on_accepted = self.smtp.on_reply = None

    def killed(self, process: subprocess.Popen[str]) -> None:
        """The run died of SIGKILL: its crash point was reached."""
        self.wait(process)
        self.disarm()
        assert process.returncode == -9, f"not killed at its point:\n{self.log(process)}"

    def finished(self, process: subprocess.Popen[str]) -> None:
        self.wait(process)
        assert process.returncode == 0, self.log(process)

    def wait(self, process: subprocess.Popen[str]) -> None:
        try:
            process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"still running after {DEADLINE:g}s:\n{self.log(process)}")

    def log(self, process: subprocess.Popen[str]) -> str:
        return next(log.read_text() for p, log in self.started if p is process)


class KillOnNth:
    """For a fake server's hook: SIGKILL the daemon on the Nth call, and let the server carry
    on only once it is dead, so whatever the server does next the daemon never hears of."""

    def __init__(self, victim: subprocess.Popen[str], n: int) -> None:
        self.victim, self.left = victim, n
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.left -= 1
            if self.left != 0:
                return
        self.victim.kill()
        self.victim.wait(timeout=DEADLINE)


@pytest.fixture
def runs(tmp_path: Path, fake_twilio: FakeTwilio, smtp_server: FakeSmtpServer) -> Iterator[Runs]:
    started: list[tuple[subprocess.Popen[str], Path]] = []
    yield Runs(tmp_path, tmp_path / "aftercare.db", fake_twilio, smtp_server, 8, started)
    for process, _ in started:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- what the database says ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    channel: str
    status: str
    provider_id: str | None
    phone: str
    email: str | None


def due_rows(path: Path) -> list[Row]:
    engine = db.make_engine(f"sqlite:///{path}")
    query = (
        select(Message.channel, Message.status, Message.provider_id, Patient.phone, Patient.email)
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(Message.step == STEP)
    )
    with engine.connect() as connection:
        rows = [Row(*row) for row in connection.execute(query)]
    engine.dispose()
    return rows


def sending_anywhere(path: Path) -> int:
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        count = connection.scalar(
            select(func.count()).where(Message.status == MessageStatus.SENDING)
        )
    engine.dispose()
    return count or 0


# --- the matrix ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(POINTS_OF_THE_MATRIX))
def test_a_daemon_killed_at_this_point_delivers_every_message_once_after_a_restart(
    name: str, runs: Runs, cohort_databases: dict[Cohort, Path]
) -> None:
    point = POINTS_OF_THE_MATRIX[name]
    shutil.copy(cohort_databases[point.cohort], runs.database)
    runs.senders = point.senders

    # The daemon (not --once: the kill must come from its point, never from running out of work).
    runs.killed(runs.start(point.kill, "--poll", "60"))
    left = due_rows(runs.database)
    if point.left_sending is not None:
        assert any(r.status == MessageStatus.SENDING for r in left) == point.left_sending, left
    if point.texts_before is not None:
        assert len(runs.twilio.messages) == point.texts_before
    if point.emails_before is not None:
        assert len(runs.smtp.messages) == point.emails_before

    if point.again is not None:
        # The restart dies too, during its reconciliation of the first run's claims.
        runs.killed(runs.start(point.again, "--poll", "60"))
    runs.finished(runs.start(None, "--once"))

    assert_delivered_once(runs, point.cohort, point.left_sending is True)


def assert_delivered_once(runs: Runs, cohort: Cohort, left_sending: bool) -> None:
    rows = due_rows(runs.database)
    channels = cohort.channels.split(",")
    assert Counter(r.status for r in rows) == {"sent": cohort.patients * len(channels)}
    assert sending_anywhere(runs.database) == 0

    if "sms" in channels:
        texts = runs.twilio.messages
        if left_sending:
            assert runs.twilio.requests["list"] > 0, "the claims left were looked up at Twilio"
        assert Counter(m.to for m in texts) == {phone(i): 1 for i in range(cohort.patients)}
        sid_of = {m.to: m.sid for m in texts}
        recorded = {r.phone: r.provider_id for r in rows if r.channel == "sms"}
        assert recorded == sid_of, "each text is recorded with the sid Twilio gave it"
    else:
        assert runs.twilio.messages == []

    message_ids: defaultdict[str, list[str]] = defaultdict(list)
    for received in runs.smtp.messages:
        for recipient in received.rcpt_tos:
            message_ids[recipient].append(str(received.message["Message-ID"]))
    if "email" in channels:
        assert set(message_ids) == {email(i) for i in range(cohort.patients)}
        for recipient, ids in message_ids.items():
            assert len(ids) <= 2, f"{recipient} got {len(ids)} copies"
            assert len(set(ids)) == 1, f"{recipient}'s copies differ in Message-ID: {ids}"
        recorded = {r.email or "": r.provider_id for r in rows if r.channel == "email"}
        assert recorded == {to: ids[0] for to, ids in message_ids.items()}
    else:
        assert message_ids == {}


# --- a crash loop -------------------------------------------------------------------------------

LONG_AGO = timedelta(minutes=20)  # more than the lookup's allowance for clock skew (10 minutes)


@pytest.mark.parametrize("crashes", [1, 2])
def test_texts_sent_long_before_a_reconciliation_that_crashed_are_found_not_sent_again(
    crashes: int, runs: Runs, sqlite_template: Path
) -> None:
    """A crash loop: the first run sent every text and died before recording them, twenty
    minutes ago; with two crashes, the next run died too, just after taking the claims over for
    reconciliation. The takeover stamps the rows with its own claim time, but Twilio's records
    still say twenty minutes ago: the last run must look that far back, or it texts everyone
    again."""
    cohort = Cohort("sms", 10, due_ago=LONG_AGO + timedelta(minutes=1))
    shutil.copy(sqlite_template, runs.database)
    enroll_due_now(runs.database, cohort)
    # Time travel on both sides, consistently: Twilio dates the texts twenty minutes back, and
    # the first run's claims are moved back as far once it is dead.
    runs.twilio.now = lambda: datetime.now(UTC) - LONG_AGO
    runs.killed(runs.start(Kill("record:before"), "--poll", "60"))
    runs.twilio.now = lambda: datetime.now(UTC)
    move_claims_back(runs.database, LONG_AGO)
    if crashes == 2:
        runs.killed(runs.start(Kill("reconcile-claim:after-commit"), "--poll", "60"))
    runs.finished(runs.start(None, "--once"))

    assert_delivered_once(runs, cohort, left_sending=True)


def move_claims_back(path: Path, by: timedelta) -> None:
    engine = db.make_engine(f"sqlite:///{path}")
    with Session(engine) as session, session.begin():
        claims = session.execute(
            select(Message.id, Message.claimed_at).where(Message.status == MessageStatus.SENDING)
        ).all()
        assert claims, "the first run left its claims"
        moved = [{"id": i, "claimed_at": at - by} for i, at in claims if at is not None]
        session.execute(update(Message), moved)  # by primary key
    engine.dispose()


def test_every_point_of_the_matrix_is_a_trap_or_a_fake_server_hook() -> None:
    fake_hooks = {"twilio:create-received", "twilio:create-accepted", "twilio:list-received"}
    fake_hooks |= {"smtp:MAIL", "smtp:RCPT", "smtp:DATA"}
    kills = [p.kill for p in POINTS_OF_THE_MATRIX.values()]
    kills += [p.again for p in POINTS_OF_THE_MATRIX.values() if p.again is not None]
    assert {k.where for k in kills} <= set(POINTS) | fake_hooks
    assert len(POINTS_OF_THE_MATRIX) == 20
