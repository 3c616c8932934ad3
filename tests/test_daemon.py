"""The daemon: APScheduler wakes the dispatch job at the next due time; the real process catches
up on start, refuses a second dispatcher on SQLite, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from aftercare import db
from aftercare.app import App
from aftercare.channels.memory import MemoryChannel
from aftercare.clock import SystemClock
from aftercare.config import Settings
from aftercare.daemon import Daemon
from aftercare.dispatch import Dispatcher
from aftercare.models import Message, Worker
from aftercare.web.daemon_metrics import MetricsServer
from tests.factories import enroll
from tests.fakes.smtp import free_port

REPO = Path(__file__).resolve().parents[1]


def _enroll(app: App, discharged_at: datetime) -> None:
    enroll(app, timezone="UTC", discharged_at=discharged_at.isoformat())


@pytest.fixture
def live_app(db_url: str):
    # Real time: APScheduler runs on the wall clock. Quiet hours off so "due in 5 minutes" is
    # due in 5 minutes whatever the hour the test runs at.
    application = App(Settings(database_url=db_url, quiet_hours=None), SystemClock())
    yield application
    application.close()


def _daemon(app: App, poll: float) -> Daemon:
    dispatcher = Dispatcher(
        app.sessions,
        {"sms": MemoryChannel("sms")},
        app.catalog,
        app.settings,
        app.clock,
        "test-worker",
    )
    return Daemon(dispatcher, poll=poll)


def test_the_dispatch_job_wakes_at_the_next_due_time(live_app):
    due = datetime.now(UTC) + timedelta(minutes=5)
    _enroll(live_app, due - timedelta(hours=2))  # the welcome is due 2 h after discharge
    daemon = _daemon(live_app, poll=600)
    daemon.start(paused=True)
    try:
        daemon.tick()
        wake = daemon.next_run_time()
    finally:
        daemon.stop()
    assert wake is not None
    assert abs((wake - due).total_seconds()) < 1


def test_an_idle_daemon_still_looks_every_poll_interval(live_app):
    daemon = _daemon(live_app, poll=7)
    daemon.start(paused=True)
    try:
        daemon.tick()
        wake = daemon.next_run_time()
    finally:
        daemon.stop()
    assert wake is not None
    assert 6 <= (wake - datetime.now(UTC)).total_seconds() <= 7.5


def test_the_daemon_serves_its_own_metrics_and_health(live_app):
    _enroll(live_app, datetime.now(UTC) - timedelta(hours=2, minutes=1))  # welcome due
    daemon = _daemon(live_app, poll=600)
    daemon.start(paused=True)
    try:
        with MetricsServer(daemon, "127.0.0.1", 0) as server:
            assert requests.get(f"{server.url}/healthz", timeout=5).status_code == 503
            daemon.tick()
            health = requests.get(f"{server.url}/healthz", timeout=5)
            scrape = requests.get(f"{server.url}/metrics", timeout=5)
    finally:
        daemon.stop()
    assert health.status_code == 200
    assert scrape.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = scrape.text.splitlines()
    assert "aftercare_daemon_ticks_total 1.0" in lines
    assert 'aftercare_daemon_messages_total{outcome="sent"} 1.0' in lines
    # The database-wide figures too, as aftercare serve reports them.
    assert "aftercare_database_up 1.0" in lines
    assert 'aftercare_messages{channel="sms",status="sent"} 1.0' in lines


def test_a_metrics_port_in_use_is_refused_with_one_line(run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("run", "--dry-run", "--metrics-port", str(port))
    assert result.exit_code == 1
    assert f"--metrics-port: cannot listen on 127.0.0.1:{port}" in result.stderr


def _start(db_path: Path, *args: str) -> subprocess.Popen[str]:
    env = os.environ | {
        "AFTERCARE_DATABASE_URL": f"sqlite:///{db_path}",
        "AFTERCARE_QUIET_HOURS": "off",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "aftercare", "run", *args],
        cwd=db_path.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, seconds: float = 30) -> None:
    """Waits for another process to do something (not for a schedule): polls with a deadline."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def test_the_real_daemon_catches_up_refuses_a_second_and_stops_on_sigterm(tmp_path: Path):
    path = tmp_path / "aftercare.db"
    app = App(Settings(database_url=f"sqlite:///{path}", quiet_hours=None), SystemClock())
    _enroll(app, datetime.now(UTC) - timedelta(hours=2, minutes=1))  # welcome already due
    app.close()
    port = free_port()
    first = _start(path, "--dry-run", "--poll", "1", "--metrics-port", str(port))
    engine = db.make_engine(f"sqlite:///{path}")

    def welcome_sent() -> bool:
        with engine.connect() as connection:
            status = connection.scalar(select(Message.status).where(Message.step == "welcome-home"))
        return status == "sent"

    try:
        _wait_for(welcome_sent)
        # The pass counts what it sent once it is over, a moment after the rows say so.
        _wait_for(
            lambda: (
                'aftercare_daemon_messages_total{outcome="sent"}'
                in requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
            )
        )
        second = _start(path, "--dry-run")
        _, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "another 'aftercare run' is already dispatching" in err
        first.send_signal(signal.SIGTERM)
        out, err = first.communicate(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
        engine.dispose()
    assert first.returncode == 0, err
    assert "Welcome home, Ana" in out
    assert "daemon stopped" in err
    assert _dispatchers_stopped(path) == [True]  # `aftercare stats` shows it stopped


def _dispatchers_stopped(path: Path) -> list[bool]:
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            return [at is not None for at in connection.scalars(select(Worker.stopped_at))]
    finally:
        engine.dispose()
