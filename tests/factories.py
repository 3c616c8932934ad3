"""Test data made through the real enrollment code (parse_request + enroll_many), as staff
would make it: one patient, a list of them, or many whose welcome texts are due now."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from aftercare.app import App
from aftercare.clock import SystemClock
from aftercare.config import Settings
from aftercare.db import transaction
from aftercare.enrollment import parse_request
from aftercare.store.enrollments import enroll_many

ANA = {
    "first_name": "Ana",
    "phone": "+12025550143",
    "timezone": "America/Chicago",
    "procedure": "kyphoplasty",
    "discharged_at": "2026-11-23T10:00-06:00",
}
BATCH = 1000  # patients a transaction, as an import writes them
# The welcome text is due two hours after discharge: discharged this long ago, it is due now.
WELCOME_DUE_AGO = timedelta(hours=2, minutes=1)


def enroll(app: App, now: datetime | None = None, **fields: str) -> int:
    """One patient (Ana, unless ``fields`` say otherwise); returns the enrollment id."""
    (enrollment_id,) = enroll_all(app, [ANA | fields], now)
    return enrollment_id


def enroll_all(
    app: App, patients: Sequence[Mapping[str, str]], now: datetime | None = None
) -> list[int]:
    """Every patient in ``patients`` (CSV-style fields), in batches; their enrollment ids."""
    now = now or app.clock.now()
    requests = [parse_request(dict(fields), app.catalog, now) for fields in patients]
    ids: list[int] = []
    for start in range(0, len(requests), BATCH):
        with transaction(app.sessions) as session:
            results = enroll_many(
                session, requests[start : start + BATCH], app.settings, now, "staff:test"
            )
            ids += [result.enrollment_id for result in results]
    return ids


def phone(i: int) -> str:
    """Patient ``i``'s number in :func:`due_texts`."""
    return f"+1202555{i:04d}"


def email(i: int) -> str:
    return f"p{i}@example.org"


def due_texts(count: int, discharged_at: datetime, **fields: str) -> list[dict[str, str]]:
    """``count`` SMS-only patients P0, P1, ... (:func:`phone`, :func:`email`), in UTC."""
    return [
        {
            "first_name": f"P{i}",
            "phone": phone(i),
            "email": email(i),
            "timezone": "UTC",
            "procedure": "kyphoplasty",
            "discharged_at": discharged_at.isoformat(),
            "channels": "sms",
        }
        | fields
        for i in range(count)
    ]


def enroll_due_sms(url: str, patients: int) -> None:
    """``patients`` enrollments in the database at ``url`` whose welcome text is due now (the
    rest of each timeline in the future), for the daemon processes a test starts on it."""
    app = App(Settings(database_url=url, quiet_hours=None), SystemClock())
    try:
        now = app.clock.now()
        enroll_all(app, due_texts(patients, now - WELCOME_DUE_AGO), now)
    finally:
        app.close()  # the last connection checkpoints SQLite's WAL: the file alone is the database
