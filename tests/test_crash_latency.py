"""The crash matrix at Twilio's real latency: the fake Twilio takes 150 ms to answer each request
and the daemon keeps 64 texts in flight, so a kill always leaves dozens of requests that Twilio
holds (and then takes) without the daemon ever hearing back, while later batches are already
claimed. After the restart every text is still at Twilio exactly once, recorded with its sid.

The points and the checks are those of test_crash_matrix.py; only the latency, the concurrency
and the size of the cohort (three claims of 100) change. Last, a burst of 429s (Twilio's "too
many requests in flight") at the same concurrency: waited out, nothing lost, nothing doubled.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aftercare.statuses import MessageStatus
from tests.fakes.smtp import FakeSmtpServer
from tests.fakes.twilio import FakeTwilio
from tests.test_crash_matrix import (
    Cohort,
    Kill,
    Runs,
    assert_delivered_once,
    due_rows,
    enroll_due_now,
)

LATENCY_MS = 150
IN_FLIGHT = 64
COHORT = Cohort("sms", 250)

POINTS = {
    "while Twilio holds the 100th create request, 64 in flight": (
        Kill("twilio:create-received", 100),
        None,
    ),
    "after Twilio took the 150th text, before its answer is written": (
        Kill("twilio:create-accepted", 150),
        None,
    ),
    "after the 120th text came back, before it was recorded": (Kill("sms-send:after", 120), None),
    "during the first recording, later batches in flight": (Kill("record:before-commit"), None),
    "after the third claim, the first two in flight": (Kill("claim:after-commit", 3), None),
    "again while Twilio holds the restart's reconciliation lookups": (
        Kill("twilio:create-accepted", 80),
        Kill("twilio:list-received", 30),
    ),
}


@pytest.fixture(scope="module")
def cohort_database(
    sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("slow-cohort") / "cohort.db"
    shutil.copy(sqlite_template, path)
    enroll_due_now(path, COHORT)
    yield path


@pytest.fixture
def slow_runs(tmp_path: Path, smtp_server: FakeSmtpServer) -> Iterator[Runs]:
    started: list[tuple[subprocess.Popen[str], Path]] = []
    with FakeTwilio(latency_ms=LATENCY_MS) as twilio:
        yield Runs(tmp_path, tmp_path / "aftercare.db", twilio, smtp_server, IN_FLIGHT, started)
        for process, _ in started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("name", list(POINTS))
def test_a_daemon_killed_with_64_texts_in_flight_at_150_ms_delivers_each_once_after_a_restart(
    name: str, slow_runs: Runs, cohort_database: Path
) -> None:
    kill, again = POINTS[name]
    shutil.copy(cohort_database, slow_runs.database)

    slow_runs.killed(slow_runs.start(kill, "--poll", "60"))
    assert any(r.status == MessageStatus.SENDING for r in due_rows(slow_runs.database))
    if again is not None:
        slow_runs.killed(slow_runs.start(again, "--poll", "60"))
    slow_runs.finished(slow_runs.start(None, "--once"))

    assert_delivered_once(slow_runs, COHORT, left_sending=True)


def test_a_burst_of_too_many_requests_is_waited_out_and_each_text_arrives_once(
    slow_runs: Runs, cohort_database: Path
) -> None:
    shutil.copy(cohort_database, slow_runs.database)
    slow_runs.twilio.fail_next(40, status=429, retry_after=0.2)

    slow_runs.finished(slow_runs.start(None, "--once"))

    assert slow_runs.twilio.requests["create"] == COHORT.patients + 40
    assert_delivered_once(slow_runs, COHORT, left_sending=False)
