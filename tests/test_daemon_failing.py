"""The daemon fails loudly, not silently, and never in a hot loop: when the database refuses
writes it waits longer after each failed pass and says so once a minute; SIGTERM still stops it
cleanly; when its SQLite file is deleted it stops with exit code 1 instead of sending nothing."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftercare import logs
from aftercare.app import App
from aftercare.channels.base import Outgoing
from aftercare.channels.memory import MemoryChannel
from aftercare.clock import ManualClock, SystemClock
from aftercare.config import Settings
from aftercare.daemon import Daemon
from aftercare.dispatch import Dispatcher
from tests.factories import ANA, WELCOME_DUE_AGO, enroll
from tests.processes import aftercare, make_read_only, migrated_postgres, wait_for


def _daemon(app: App, poll: float, channel: MemoryChannel | None = None) -> Daemon:
    channels = {"sms": channel or MemoryChannel("sms")}
    dispatcher = Dispatcher(app.sessions, channels, app.catalog, app.settings, app.clock, "w")
    return Daemon(dispatcher, poll=poll)


def _welcome_due(url: str) -> None:
    app = App(Settings(database_url=url, quiet_hours=None), SystemClock())
    enroll(app, timezone="UTC", discharged_at=(datetime.now(UTC) - WELCOME_DUE_AGO).isoformat())
    app.close()


def _failures(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "aftercare.daemon" and r.levelno >= logging.ERROR
    ]


@pytest.mark.postgres
def test_failed_passes_wait_longer_each_time_and_are_logged_once_a_minute(caplog):
    caplog.set_level(logging.INFO, logger="aftercare.daemon")
    with migrated_postgres() as url:
        _welcome_due(url)
        make_read_only(url)
        clock = ManualClock(datetime.now(UTC))
        app = App(Settings(database_url=url, quiet_hours=None), clock)
        daemon = _daemon(app, poll=0.5)
        daemon.start(paused=True)
        waits = []
        try:
            for _ in range(9):
                daemon.tick()
                wake = daemon.next_run_time()
                assert wake is not None
                waits.append(round((wake - datetime.now(UTC)).total_seconds()))
            assert len(_failures(caplog)) == 1
            clock.advance(timedelta(seconds=61))
            daemon.tick()
        finally:
            daemon.stop()  # a clean stop although the stop cannot be recorded
            app.close()
    assert waits == [0, 1, 2, 4, 8, 16, 32, 60, 60]  # from --poll, doubling, up to a minute
    first, second = _failures(caplog)
    assert "ReadOnlySqlTransaction" in first or "InternalError" in first
    assert "10 failed in a row, 9 since the last line" in second


@pytest.mark.postgres
def test_the_real_daemon_on_a_read_only_database_idles_and_stops_cleanly(tmp_path: Path):
    with migrated_postgres() as url:
        _welcome_due(url)
        make_read_only(url)
        env = {"AFTERCARE_DATABASE_URL": url, "AFTERCARE_QUIET_HOURS": "off"}
        with aftercare(
            tmp_path / "run.log", "run", "--dry-run", "--poll", "0.5", env=env, cwd=tmp_path
        ) as daemon:
            wait_for(lambda: "dispatch pass failed" in daemon.output())
            cpu_before = _cpu_seconds(daemon.popen.pid)
            time.sleep(5)  # watching how busy a failing daemon is, not waiting for a schedule
            cpu = _cpu_seconds(daemon.popen.pid) - cpu_before
            assert daemon.stop() == 0
        log = daemon.output()
    assert cpu < 1.0, f"{cpu:.2f} s of CPU in 5 s"
    assert log.count("dispatch pass failed") == 1, log
    assert "Traceback" not in log and "daemon stopped" in log
    for secret in (ANA["first_name"], ANA["phone"], ANA["phone"][2:]):
        assert secret not in log  # the failing statement's parameters stay out of the log


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_the_daemon_stops_with_exit_code_1_when_its_sqlite_file_is_deleted(
    tmp_path: Path, sqlite_template: Path
):
    path = tmp_path / "aftercare.db"
    path.write_bytes(sqlite_template.read_bytes())
    env = {"AFTERCARE_DATABASE_URL": f"sqlite:///{path}"}
    with aftercare(
        tmp_path / "run.log", "run", "--dry-run", "--poll", "0.5", env=env, cwd=tmp_path
    ) as daemon:
        wait_for(lambda: "daemon started" in daemon.output())
        for leftover in tmp_path.glob("aftercare.db*"):
            if not leftover.name.endswith(".lock"):
                leftover.unlink()
        assert daemon.popen.wait(timeout=30) == 1
    assert f"error: database: {path} was deleted while the daemon ran" in daemon.output()
    assert not path.exists()  # not quietly recreated empty


def test_a_long_pass_does_not_make_the_scheduler_warn_at_every_poll(live_sqlite_app, caplog):
    logs.quiet_libraries()  # as `aftercare run` sets logging up
    caplog.set_level(logging.WARNING)
    enroll(
        live_sqlite_app,
        timezone="UTC",
        discharged_at=(datetime.now(UTC) - WELCOME_DUE_AGO).isoformat(),
    )

    def slow_provider(_: Outgoing) -> None:
        time.sleep(2)  # a provider taking its time: the pass outlasts four poll intervals
        return None

    channel = MemoryChannel("sms", behaviour=slow_provider)
    daemon = _daemon(live_sqlite_app, poll=0.5, channel=channel)
    daemon.start()
    try:
        wait_for(lambda: daemon.outcomes["sent"] == 1)
    finally:
        daemon.stop()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("apscheduler")] == []


@pytest.fixture
def live_sqlite_app(tmp_path: Path, sqlite_template: Path):
    path = tmp_path / "aftercare.db"
    path.write_bytes(sqlite_template.read_bytes())
    application = App(Settings(database_url=f"sqlite:///{path}", quiet_hours=None), SystemClock())
    yield application
    application.close()
