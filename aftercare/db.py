"""Engines, sessions and migrations.

SQLite: WAL so readers never block the writer, a busy timeout so writers queue instead of failing,
and ``BEGIN IMMEDIATE`` for every transaction: a deferred transaction that reads and then writes
can fail with "database is locked" when another writer got there first, losing the write.
PostgreSQL goes through psycopg 3.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from aftercare.errors import AftercareError
from alembic import command

SQLITE_BUSY_TIMEOUT_MS = 15_000


# One writer at a time per SQLite engine, queued in the process. Every transaction here is a
# BEGIN IMMEDIATE write, and SQLite's busy handler waits by sleeping with back-off rather than
# waking when the lock is free, so webhook threads queueing on it wait far longer than on a
# lock (bench/README.md, status callbacks). Other processes (the daemon beside the web server)
# still queue on SQLite's own lock, under the busy timeout.
_sqlite_writers: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()


def normalise_url(raw: str) -> URL:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy's own default is psycopg2)."""
    url = make_url(raw)
    if url.drivername in {"postgresql", "postgres"}:
        url = url.set(drivername="postgresql+psycopg")
    return url


def make_engine(raw_url: str, **kwargs: Any) -> Engine:
    url = normalise_url(raw_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_engine(url: URL, **kwargs: Any) -> Engine:
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself instead of pysqlite's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Durable at every checkpoint and crash-safe in WAL mode; FULL would fsync every commit.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    _sqlite_writers[engine] = threading.RLock()
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    bind = factory.kw.get("bind")
    writer = _sqlite_writers.get(bind) if isinstance(bind, Engine) else None
    with writer or nullcontext(), factory() as session, session.begin():
        yield session


# --- migrations -------------------------------------------------------------------------------


def migrations_dir() -> Path:
    """Inside the package in a wheel, at the repo top in a checkout (like the timelines)."""
    here = Path(__file__).resolve().parent
    packaged = here / "_data" / "alembic"
    return packaged if packaged.is_dir() else here.parent / "alembic"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def _scripts() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return ScriptDirectory.from_config(config)


def head_revision() -> str | None:
    return _scripts().get_current_head()


def _check_known(current: str | None) -> None:
    """A database migrated by a newer aftercare names a revision this one has never heard of."""
    if current is not None and current not in {s.revision for s in _scripts().walk_revisions()}:
        raise AftercareError(
            f"database: schema is at {current}, which is newer than this aftercare knows "
            f"(it knows up to {head_revision()}); install the newer aftercare"
        )


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def sqlite_file(engine: Engine) -> Path | None:
    """The absolute path of a SQLite database file (a relative URL is relative to the current
    folder), or None for PostgreSQL and in-memory SQLite."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database).expanduser().resolve()


def where(engine: Engine) -> str:
    """The database as a person should see it in a message: the file, or the URL sans password."""
    path = sqlite_file(engine)
    return str(path) if path else engine.url.render_as_string(hide_password=True)


def require_existing(engine: Engine) -> None:
    path = sqlite_file(engine)
    if path is not None and not path.exists():
        raise AftercareError(
            f"database: {path} does not exist; create it with 'aftercare db upgrade' "
            "(or set AFTERCARE_DATABASE_URL to the database you meant)"
        )


def upgrade(engine: Engine, revision: str = "head") -> None:
    path = sqlite_file(engine)
    if path is not None:  # creating the file: its folder too
        path.parent.mkdir(parents=True, exist_ok=True)
    _check_known(current_revision(engine))
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def ensure_migrated(engine: Engine) -> None:
    """SQLite is migrated on first use; another database must be migrated by ``db upgrade``."""
    try:
        current = current_revision(engine)
    except OperationalError as exc:
        raise AftercareError(
            f"database: cannot connect to {where(engine)} ({_short(exc)})"
        ) from None
    if current == head_revision():
        return
    _check_known(current)
    if engine.dialect.name == "sqlite":
        upgrade(engine)
        return
    raise AftercareError(
        f"database: schema is at {current or 'nothing'}, needs {head_revision()}; "
        "run 'aftercare db upgrade'"
    )


def _short(exc: OperationalError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
