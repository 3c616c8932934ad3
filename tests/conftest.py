"""Shared fixtures: a migrated database on each backend, an App with a manual clock, the CLI.

Tests that take ``db_url`` (or anything built on it) run twice: on SQLite and on PostgreSQL.
PostgreSQL comes from AFTERCARE_TEST_POSTGRES_URL (default: the local server with trust auth);
when it is unreachable those tests fail with a message saying how to start it. They never skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from aftercare import db
from aftercare.app import App
from aftercare.cli import cli
from aftercare.clock import ManualClock
from aftercare.config import Settings
from aftercare.models import Base

# Fixtures of the fake servers live beside them.
pytest_plugins = [
    "tests.fakes.twilio",
    "tests.fakes.smtp",
    "tests.fakes.fhir",
    "tests.web_server",
    "tests.console",
]

POSTGRES_URL = os.environ.get(
    "AFTERCARE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
# A Monday in November; discharge times in tests sit around it.
NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file, copied for each test (migrating takes longer than copying)."""
    path = tmp_path_factory.mktemp("template") / "aftercare.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()  # the last connection to close checkpoints the WAL into the file
    return path


@contextmanager
def throwaway_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database (its URL), dropped afterwards whatever happened."""
    admin_url = make_url(POSTGRES_URL)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            name = f"aftercare_test_{uuid.uuid4().hex[:10]}"
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # any failure means the same to the user
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {admin_url.render_as_string(hide_password=True)} "
            f"({type(exc).__name__}). Start it (README: 'Running against PostgreSQL'), set "
            "AFTERCARE_TEST_POSTGRES_URL, or deselect these tests with -m 'not postgres'.",
            pytrace=False,
        )
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test run, dropped at the end."""
    with throwaway_postgres_database() as url:
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        yield url


def _truncate_postgres(url: str) -> None:
    engine = db.make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """A migrated, empty database: a copied SQLite file, or the run's PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "aftercare.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    _truncate_postgres(url)
    return url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url)


@pytest.fixture
def app(settings: Settings, clock: ManualClock) -> Iterator[App]:
    application = App(settings, clock, actor="staff:test")
    yield application
    application.close()


@dataclass
class CliRun:
    """Runs ``aftercare ...`` in-process against the test App."""

    app: App

    def __call__(self, *args: str, input: str | None = None) -> Result:
        runner = CliRunner()
        return runner.invoke(cli, list(args), obj=self.app, input=input, catch_exceptions=False)


@pytest.fixture
def run(app: App) -> CliRun:
    return CliRun(app)


@pytest.fixture
def enroll_args() -> Callable[..., list[str]]:
    """Factory: the arguments of a valid ``enroll``, with any field replaced."""

    def make(**overrides: Any) -> list[str]:
        fields = {
            "first-name": "Ana",
            "phone": "+12025550143",
            "email": "ana@example.org",
            "tz": "America/Chicago",
            "procedure": "kyphoplasty",
            "discharged-at": "2026-11-23T10:30-06:00",
        } | {k.replace("_", "-"): v for k, v in overrides.items()}
        args = ["enroll"]
        for key, value in fields.items():
            if value is not None:
                args += [f"--{key}", value]
        return args

    return make


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, not even the schema: a new SQLite file, or a throwaway
    PostgreSQL database of this test's own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture
def run_on(clock: ManualClock) -> Iterator[Callable[[str], CliRun]]:
    """Factory: a ``run`` against the database at the given URL (same clock and actor)."""
    apps: list[App] = []

    def make(url: str) -> CliRun:
        apps.append(App(Settings(database_url=url), clock, actor="staff:test"))
        return CliRun(apps[-1])

    yield make
    for application in apps:
        application.close()


@pytest.fixture
def row_counts(app: App) -> Callable[[], dict[str, int]]:
    """Function: the number of rows in every table of the test database, by table name."""

    def count() -> dict[str, int]:
        with app.engine.connect() as connection:
            return {
                table.name: connection.scalar(select(func.count()).select_from(table)) or 0
                for table in Base.metadata.sorted_tables
            }

    return count
