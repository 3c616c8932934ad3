"""Identity is enforced by PostgreSQL, not by looking first: two real ``aftercare enroll`` (or
``aftercare import``) processes of the same people at the same moment make one patient and one
enrollment per person.

"The same moment" is made certain, not hoped for: the test holds a lock that lets both processes
read but not insert, waits until both are queued on it (each has looked and found nothing), then
lets them go. Look-then-insert code makes two of everyone here; a unique key makes one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, create_engine, func, select, text

from aftercare import db
from aftercare.models import Enrollment, Message, Patient
from tests.test_scale_out import REPO, pg_url, wait_for

pytestmark = pytest.mark.postgres
__all__ = ["pg_url"]  # a fixture, used by name

# The processes read the real clock: discharges of the last few hours (and last week), in UTC.
EARLIER = (datetime.now(UTC) - timedelta(hours=3)).replace(microsecond=0).isoformat()
LATER = (datetime.now(UTC) - timedelta(hours=1, minutes=30)).replace(microsecond=0).isoformat()
LAST_WEEK = (datetime.now(UTC) - timedelta(days=7)).replace(microsecond=0).isoformat()
ANA = [
    "--first-name",
    "Ana",
    "--phone",
    "+12025550143",
    "--tz",
    "America/Chicago",
    "--procedure",
    "kyphoplasty",
]


def start(url: str, *args: str) -> subprocess.Popen[str]:
    """``aftercare ARGS`` in its own process, as two nurses at two desks would run it."""
    return subprocess.Popen(
        [sys.executable, "-m", "aftercare", *args],
        env=os.environ | {"AFTERCARE_DATABASE_URL": url},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


@contextmanager
def held_back(url: str, table: str, processes: int) -> Iterator[Connection]:
    """Inside: ``table`` takes no inserts (reads go on). On leaving, once ``processes`` sessions
    are queued on the lock, it is released and they all insert at once."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            connection.execute(text(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE"))
            yield connection
            wait_for(
                lambda: waiting_on_locks(url) >= processes,
                what=f"{processes} processes queued on the {table} lock",
            )
            transaction.commit()
    finally:
        engine.dispose()


def waiting_on_locks(url: str) -> int:
    engine = create_engine(db.normalise_url(url))
    try:
        with engine.connect() as connection:
            query = text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            return int(connection.scalar(query) or 0)
    finally:
        engine.dispose()


def counts(url: str) -> tuple[int, int, int]:
    """Patients, enrollments and messages in the database."""
    engine = db.make_engine(url)
    try:
        with engine.connect() as connection:
            return tuple(  # type: ignore[return-value]
                connection.scalar(select(func.count()).select_from(model)) or 0
                for model in (Patient, Enrollment, Message)
            )
    finally:
        engine.dispose()


def messages_per_enrollment(url: str, args: Sequence[str]) -> int:
    """How many messages one enrollment of ``args`` plans (from ``aftercare preview``)."""
    done = subprocess.run(
        [sys.executable, "-m", "aftercare", *args],
        env=os.environ | {"AFTERCARE_DATABASE_URL": url},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip().splitlines()[-1].split()[0])


def test_two_enrolls_of_the_same_patient_at_the_same_moment_make_one_enrollment(
    pg_url: str,
) -> None:
    args = ["enroll", *ANA, "--discharged-at", EARLIER]

    with held_back(pg_url, "patient", processes=2):
        first, second = start(pg_url, *args), start(pg_url, *args)
    results = [finish(first), finish(second)]

    assert [code for code, _, _ in results] == [0, 0], results
    outputs = sorted(out.splitlines()[0] for _, out, _ in results)
    assert outputs[0].startswith("already enrolled (nothing changed): id 1,"), outputs
    assert outputs[1].startswith("enrolled: id 1,"), outputs
    patients, enrollments, _ = counts(pg_url)
    assert (patients, enrollments) == (1, 1)


def test_two_enrolls_with_different_discharge_times_leave_one_and_refuse_the_other(
    pg_url: str,
) -> None:
    # Ana is a patient already (another procedure), so the race is on the enrollment itself.
    done = finish(
        start(
            pg_url,
            "enroll",
            *ANA[:-1],
            "vertebroplasty",
            "--discharged-at",
            LAST_WEEK,
        )
    )
    assert done[0] == 0, done
    earlier = ["enroll", *ANA, "--discharged-at", EARLIER]
    later = ["enroll", *ANA, "--discharged-at", LATER]

    with held_back(pg_url, "enrollment", processes=2):
        first, second = start(pg_url, *earlier), start(pg_url, *later)
    results = sorted([finish(first), finish(second)])

    (ok, refused) = results
    assert ok[0] == 0 and ok[1].startswith("enrolled: id 2,"), results
    assert refused[0] == 1, results
    assert refused[2].startswith("error: --discharged-at: "), results
    assert "aftercare reschedule 2" in refused[2]
    assert counts(pg_url)[:2] == (1, 2)


def test_two_imports_of_the_same_file_at_once_make_one_patient_per_person(
    pg_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "discharges.csv"
    rows = [f"P{i},+1202555{i:04d},America/Chicago,kyphoplasty,{EARLIER}" for i in range(300)]
    header = "first_name,phone,timezone,procedure,discharged_at"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    per_enrollment = messages_per_enrollment(
        pg_url,
        [
            "preview",
            "kyphoplasty",
            "--discharged-at",
            EARLIER,
            "--tz",
            "America/Chicago",
            "--channels",
            "sms",
        ],
    )

    with held_back(pg_url, "patient", processes=2):
        first, second = start(pg_url, "import", str(path)), start(pg_url, "import", str(path))
    results = [finish(first), finish(second)]

    assert [code for code, _, _ in results] == [0, 0], results
    summaries = sorted(out.strip() for _, out, _ in results)
    assert summaries[0].startswith("300 rows: enrolled 0, already enrolled 300, 0 bad"), summaries
    assert summaries[1].startswith("300 rows: enrolled 300, already enrolled 0, 0 bad"), summaries
    assert counts(pg_url) == (300, 300, 300 * per_enrollment)
