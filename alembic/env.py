"""Alembic environment. The engine comes from aftercare (``aftercare db upgrade``); run through
the plain ``alembic`` command it is built from AFTERCARE_DATABASE_URL like everything else."""

from __future__ import annotations

from sqlalchemy import Engine

from aftercare.models import Base
from alembic import context


def _engine() -> Engine:
    engine = context.config.attributes.get("engine")
    if engine is not None:
        return engine  # type: ignore[no-any-return]
    from aftercare.config import load_settings
    from aftercare.db import make_engine

    return make_engine(load_settings().database_url)


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run 'aftercare db upgrade'")
run_migrations_online()
