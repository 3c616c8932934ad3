"""The schema: migrations match the models on both backends, and SQLite is set up for writers."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, func, insert, inspect, select

from aftercare import db
from aftercare.identity import identity_key
from aftercare.models import Base, Enrollment, Event, Patient, Reply
from tests.conftest import CliRun, throwaway_postgres_database


@pytest.fixture
def engine(empty_db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(empty_db_url)
    yield engine
    engine.dispose()


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def tables(engine: Engine) -> set[str]:
    # Alembic keeps its (then empty) version table after downgrading to base.
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrading_an_empty_database_to_head_gives_exactly_the_models(engine: Engine) -> None:
    db.upgrade(engine)

    assert schema_differences(engine) == []
    assert db.current_revision(engine) == db.head_revision()


def test_downgrading_to_base_leaves_no_tables_and_upgrading_again_works(engine: Engine) -> None:
    db.upgrade(engine)
    db.downgrade(engine, "base")

    assert tables(engine) == set()
    assert db.current_revision(engine) is None

    db.upgrade(engine)
    assert tables(engine) == {t.name for t in Base.metadata.sorted_tables}
    assert schema_differences(engine) == []


def test_every_migration_can_be_undone_and_redone_one_step_at_a_time(engine: Engine) -> None:
    script = ScriptDirectory.from_config(db.alembic_config(engine))
    for revision in reversed(list(script.walk_revisions())):
        db.upgrade(engine, revision.revision)
        db.downgrade(engine, "-1")
        db.upgrade(engine, revision.revision)
        assert db.current_revision(engine) == revision.revision
    assert schema_differences(engine) == []


def test_replies_stored_before_0004_get_the_answer_their_replied_event_names(
    engine: Engine,
) -> None:
    db.upgrade(engine, "0003")
    at = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
    reply = {"received_at": at, "from_number": "+12025550143", "body": "hi", "kind": "question"}
    with engine.begin() as connection:
        connection.execute(
            insert(Reply).values(urgent=False),
            [reply | {"id": 1, "provider_id": "SM1"}, reply | {"id": 2, "provider_id": "SM2"}],
        )
        detail = {"reply_id": 1, "answer": "not_monitored"}
        connection.execute(
            insert(Event), [{"at": at, "kind": "replied", "actor": "patient", "detail": detail}]
        )

    db.upgrade(engine)

    with engine.connect() as connection:
        answers = dict(connection.execute(select(Reply.id, Reply.answer)).all())
    assert answers == {1: "not_monitored", 2: None}


def test_rows_stored_before_0005_get_identity_keys_the_oldest_of_a_duplicate_only(
    engine: Engine,
) -> None:
    """An older release could store one person twice: the oldest row gets the key, the copy keeps
    NULL (still working, never matched), and nothing is merged or changed behind the operator."""
    db.upgrade(engine, "0004")
    at = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    ana = {"phone": "+12025550143", "timezone": "America/Chicago", "language": "es"}
    ana |= {"external_id": None}  # every row names the same columns (one executemany)
    kypho = {"procedure": "kyphoplasty", "schedule_version": 1, "channels": "sms"}
    with engine.begin() as connection:
        connection.execute(
            insert(Patient).values(created_at=at),
            [
                ana | {"id": 1, "first_name": "Ana"},
                ana | {"id": 2, "first_name": "ANA "},  # the same person, stored again
                ana | {"id": 3, "first_name": "Ana", "external_id": "MRN-1"},
            ],
        )
        connection.execute(
            insert(Enrollment).values(patient_id=1, created_at=at, updated_at=at),
            [
                kypho | {"id": 1, "discharged_at": at, "status": "active"},
                kypho | {"id": 2, "discharged_at": at + timedelta(hours=1), "status": "paused"},
                kypho | {"id": 3, "discharged_at": at + timedelta(hours=2), "status": "cancelled"},
            ],
        )

    db.upgrade(engine)

    with engine.connect() as connection:
        patients = dict(connection.execute(select(Patient.id, Patient.identity_key)).all())
        enrollments = dict(connection.execute(select(Enrollment.id, Enrollment.active_key)).all())
    assert patients == {
        1: identity_key(None, "+12025550143", "Ana"),
        2: None,
        3: identity_key("MRN-1", "+12025550143", "Ana"),
    }
    assert enrollments == {1: "1:kyphoplasty", 2: None, 3: None}


def test_db_upgrade_prints_the_revision_and_is_safe_to_run_again(
    empty_db_url: str, run_on: Callable[[str], CliRun]
) -> None:
    run = run_on(empty_db_url)
    head = db.head_revision()

    first = run("db", "upgrade")
    again = run("db", "upgrade")

    assert first.exit_code == 0, first.output
    assert first.stdout == f"database upgraded from empty to {head}\n"
    assert again.exit_code == 0, again.output
    assert again.stdout == f"database is up to date (revision {head})\n"


@pytest.mark.postgres
def test_an_unmigrated_postgresql_database_asks_the_user_to_run_db_upgrade(
    run_on: Callable[[str], CliRun],
) -> None:
    with throwaway_postgres_database() as url:
        result = run_on(url)("patients", "list")
        engine = db.make_engine(url)
        left = tables(engine)
        engine.dispose()

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: database:")
    assert "run 'aftercare db upgrade'" in result.stderr
    assert left == set()


def test_a_new_sqlite_database_is_migrated_on_first_use(
    tmp_path: Path, run_on: Callable[[str], CliRun]
) -> None:
    url = f"sqlite:///{tmp_path / 'first-use.db'}"

    result = run_on(url)("patients", "list", "--json")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "[]"
    engine = db.make_engine(url)
    assert db.current_revision(engine) == db.head_revision()
    engine.dispose()


# --- SQLite under concurrent writers ----------------------------------------------------------


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'writers.db'}")
    db.upgrade(engine)
    yield engine
    engine.dispose()


def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as connection:
        journal_mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
        busy_timeout = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        foreign_keys = connection.exec_driver_sql("PRAGMA foreign_keys").scalar()

    assert journal_mode == "wal"
    assert busy_timeout == db.SQLITE_BUSY_TIMEOUT_MS
    assert foreign_keys == 1


def test_a_sqlite_transaction_takes_the_write_lock_as_it_begins(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    with db.transaction(db.session_factory(sqlite_engine)) as session:
        session.execute(select(1))  # reads only: a deferred transaction would hold no lock yet
        other = sqlite3.connect(tmp_path / "writers.db", timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def patient(name: str) -> Patient:
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
    return Patient(
        first_name=name, phone="+12025550143", timezone="UTC", language="en", created_at=now
    )


def test_a_second_sqlite_writer_waits_for_the_first_instead_of_failing(
    sqlite_engine: Engine,
) -> None:
    """The lost-write pattern: the first writer reads, a second writer commits, the first writes.

    In a deferred transaction the first writer's write then fails at once with "database is
    locked" (its read snapshot is stale; no busy timeout helps). With BEGIN IMMEDIATE the second
    writer waits at its BEGIN until the first commits, and both writes land. The second writer
    has an engine of its own, as another process would (one engine's writers also queue on a
    lock in the process: see the next test).
    """
    sessions = db.session_factory(sqlite_engine)
    other_engine = db.make_engine(str(sqlite_engine.url))
    other_sessions = db.session_factory(other_engine)
    second_waits_or_is_done = threading.Event()
    errors: list[BaseException] = []

    @event.listens_for(sqlite_engine, "before_cursor_execute")
    def _announce(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if threading.current_thread().name == "second" and statement.startswith("BEGIN IMMEDIATE"):
            second_waits_or_is_done.set()  # it now waits for the lock (busy timeout)

    @event.listens_for(other_engine, "before_cursor_execute")
    def _announce_other(_conn: Any, _cursor: Any, statement: str, *args: Any) -> None:
        _announce(_conn, _cursor, statement, *args)

    @event.listens_for(other_engine, "connect")  # runs after db.py's: a regression fails fast
    def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=5000")

    def second_writer() -> None:
        try:
            with db.transaction(other_sessions) as session:
                session.add(patient("Second"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            second_waits_or_is_done.set()

    sqlite_engine.pool.dispose()  # new connections get the short timeout
    with db.transaction(sessions) as session:
        session.scalar(select(func.count()).select_from(Patient))
        thread = threading.Thread(target=second_writer, name="second")
        thread.start()
        assert second_waits_or_is_done.wait(timeout=10)
        session.add(patient("First"))
    thread.join(timeout=10)
    other_engine.dispose()

    assert not thread.is_alive()
    assert errors == []
    with sessions() as session:
        names = set(session.scalars(select(Patient.first_name)))
    assert names == {"First", "Second"}


def test_writers_of_one_engine_queue_in_the_process_not_on_sqlites_busy_handler(
    sqlite_engine: Engine,
) -> None:
    """With no busy timeout at all, a second thread's transaction still waits for the first's
    and lands: it queues on the engine's lock, which wakes it as soon as the first commits
    (SQLite's busy handler would sleep on with back-off)."""

    @event.listens_for(sqlite_engine, "connect")
    def _no_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    sqlite_engine.pool.dispose()
    sessions = db.session_factory(sqlite_engine)
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            with db.transaction(sessions) as session:
                session.add(patient("Second"))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with db.transaction(sessions) as session:
        session.add(patient("First"))
        thread = threading.Thread(target=second_writer)
        thread.start()
        # Without the lock its BEGIN IMMEDIATE fails at once ("database is locked"): it would
        # be over long before this; with the lock it waits for this transaction.
        thread.join(timeout=0.3)
        assert thread.is_alive(), errors
    thread.join(timeout=10)

    assert errors == []
    with sessions() as session:
        assert set(session.scalars(select(Patient.first_name))) == {"First", "Second"}


def test_a_database_migrated_by_a_newer_aftercare_is_refused_in_one_line(
    engine: Engine, empty_db_url: str, run_on: Callable[[str], CliRun]
) -> None:
    db.upgrade(engine)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    run = run_on(empty_db_url)

    for command in (["patients", "list"], ["db", "upgrade"]):
        result = run(*command)

        assert result.exit_code == 1, command
        assert result.stderr.startswith("error: database: schema is at 9999, which is newer")
        assert result.stderr.count("\n") == 1
