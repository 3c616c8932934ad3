"""Exactly once through a crash: the real daemon process, killed with SIGKILL in the middle of a
batch of SMS to the fake Twilio server, then started again. Every message must reach the fake
server exactly once: those the provider accepted before the kill are found in its message list
and recorded, not sent again; the others are sent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select

from aftercare.app import App
from aftercare.clock import SystemClock
from aftercare.config import Settings
from aftercare.models import Message
from tests.factories import enroll_due_sms

PATIENTS = 300


def _daemon(path: Path, fake, *args: str) -> subprocess.Popen[str]:
    env = (
        os.environ
        | fake.environ()
        | {
            "AFTERCARE_DATABASE_URL": f"sqlite:///{path}",
            "AFTERCARE_QUIET_HOURS": "off",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "aftercare", "run", *args],
        env=env,
        cwd=path.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, seconds: float = 60) -> None:
    """Waits for the other process to get somewhere (not for a schedule): polls with a deadline."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _welcome_statuses(path: Path) -> Counter[str]:
    app = App(Settings(database_url=f"sqlite:///{path}"), SystemClock())
    with app.sessions() as session:
        rows = session.execute(
            select(Message.status, func.count())
            .where(Message.step == "welcome-home")
            .group_by(Message.status)
        ).all()
    app.close()
    return Counter(dict(rows))


def test_a_daemon_killed_mid_batch_loses_and_duplicates_nothing(tmp_path: Path, fake_twilio):
    path = tmp_path / "aftercare.db"
    enroll_due_sms(f"sqlite:///{path}", PATIENTS)
    # Slow answers (50 ms each, 8 senders) stretch the batch to a couple of seconds, so the kill
    # lands with messages accepted by the provider but not yet recorded as sent.
    fake_twilio.stall_next(PATIENTS, 0.05)
    first = _daemon(path, fake_twilio, "--poll", "60")
    _wait_for(lambda: len(fake_twilio.messages) >= PATIENTS // 3)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    accepted_before = len(fake_twilio.messages)
    in_flight = _welcome_statuses(path)["sending"]
    assert 0 < accepted_before < PATIENTS
    assert in_flight > 0, "the kill should have left claimed rows behind"

    second = _daemon(path, fake_twilio, "--once")
    _, err = second.communicate(timeout=120)
    assert second.returncode == 0, err

    sent_to = Counter(m.to for m in fake_twilio.messages)
    assert len(sent_to) == PATIENTS, "every patient got the welcome"
    assert max(sent_to.values()) == 1, "nobody got it twice"
    assert _welcome_statuses(path) == {"sent": PATIENTS}
    assert fake_twilio.requests["list"] > 0, "stale claims were looked up before re-sending"


def test_a_second_run_after_everything_was_sent_sends_nothing(tmp_path: Path, fake_twilio):
    path = tmp_path / "aftercare.db"
    enroll_due_sms(f"sqlite:///{path}", 5)
    for _ in range(2):
        done = _daemon(path, fake_twilio, "--once")
        out, err = done.communicate(timeout=60)
        assert done.returncode == 0, err
    assert len(fake_twilio.messages) == 5
    assert "nothing was due" in out
    assert datetime.now(UTC) > max(m.date_created for m in fake_twilio.messages)
