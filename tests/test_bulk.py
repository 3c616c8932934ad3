"""The bulk writer (and the events writer on it) stores exactly what the ORM would store, on
SQLite and PostgreSQL.

Rows are compared as the driver returns them (text on SQLite), not through SQLAlchemy's types,
so a different datetime or JSON format would show.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, insert
from sqlalchemy.orm import Session

from aftercare.app import App
from aftercare.models import Enrollment, Event, Message, Patient
from aftercare.planner import plan
from aftercare.statuses import EventKind
from aftercare.store import bulk, events
from aftercare.store.enrollments import message_row
from aftercare.store.events import NewEvent

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
# 20:45 in Chicago: the welcome message falls in quiet hours, so planned_at and due_at differ.
DISCHARGED = datetime(2026, 11, 24, 2, 45, tzinfo=UTC)


def _enrollments(connection: Connection, count: int) -> list[int]:
    patient = {"first_name": "Ana", "phone": "+12025550143", "timezone": "America/Chicago"}
    connection.execute(insert(Patient), [patient | {"language": "es", "created_at": NOW}])
    rows = [
        {
            "patient_id": 1,
            "procedure": "kyphoplasty",
            "schedule_version": 1,
            "channels": "sms,email",
            "discharged_at": DISCHARGED + timedelta(minutes=i),
            "status": "active",
            "created_at": NOW,
            "updated_at": NOW,
        }
        for i in range(count)
    ]
    connection.execute(insert(Enrollment), rows)
    return list(range(1, count + 1))


def _raw(connection: Connection, table: str, enrollment_id: int, skip: int) -> list[Any]:
    """The rows of one enrollment as the driver gives them, without the first ``skip`` columns."""
    rows = connection.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id").fetchall()
    return [row[skip:] for row in rows if row.enrollment_id == enrollment_id]


def test_message_rows_are_stored_as_the_orm_stores_them(app: App) -> None:
    planned = plan(
        app.catalog.get("kyphoplasty"),
        "America/Chicago",
        DISCHARGED,
        ("sms", "email"),
        app.settings.quiet_hours,
    )
    assert any(m.deferred for m in planned)
    with app.engine.begin() as connection:
        by_orm, by_bulk = _enrollments(connection, 2)
        connection.execute(insert(Message), [message_row(by_orm, m) for m in planned])
        bulk.insert_messages(connection, [(by_bulk, planned)])
        # id and enrollment_id differ by design; every other column must be the same.
        assert _raw(connection, "message", by_bulk, 2) == _raw(connection, "message", by_orm, 2)


def test_event_rows_are_stored_as_the_orm_stores_them(app: App) -> None:
    with app.engine.connect() as connection:
        by_orm, by_store = _enrollments(connection, 2)
        orm_rows = [
            {"at": NOW, "kind": kind, "actor": "staff", "enrollment_id": by_orm, "detail": detail}
            for kind, detail in (("enrolled", None), ("planned", {"messages": 18}))
        ]
        connection.execute(insert(Event), orm_rows)
        with Session(bind=connection) as session:
            events.write(
                session,
                NOW,
                [
                    NewEvent(EventKind.ENROLLED, "staff", by_store),
                    NewEvent(EventKind.PLANNED, "staff", by_store, detail={"messages": 18}),
                ],
            )
            assert _raw(connection, "event", by_store, 1) == [
                (*row[:3], by_store, *row[4:]) for row in _raw(connection, "event", by_orm, 1)
            ]


def test_a_column_list_without_a_column_that_has_a_default_is_refused(app: App) -> None:
    columns = tuple(c for c in bulk.MESSAGE_COLUMNS if c != "attempts")
    with app.engine.connect() as connection, pytest.raises(ValueError, match="attempts"):
        bulk.BulkInsert(connection, Message, columns)
