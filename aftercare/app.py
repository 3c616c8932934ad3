"""The application object: settings plus the things built from them, created on first use."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from aftercare import db
from aftercare.clock import Clock, SystemClock
from aftercare.config import Settings
from aftercare.render import Clinic
from aftercare.schedules.load import Catalog


class App:
    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        actor: str = "staff",
        create_database: bool = True,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.actor = actor
        # False: a SQLite file that does not exist is an error, not a new empty database (the
        # CLI's commands that only read: a mistyped path must not look like "no patients").
        self.create_database = create_database

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.default(self.settings.schedules_dir)

    @cached_property
    def clinic(self) -> Clinic:
        return Clinic(self.settings.clinic_name, self.settings.clinic_phone)

    @cached_property
    def engine(self) -> Engine:
        return db.make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """Sessions on a migrated database (SQLite is migrated here on first use)."""
        if not self.create_database:
            db.require_existing(self.engine)
        db.ensure_migrated(self.engine)
        return db.session_factory(self.engine)

    def close(self) -> None:
        if "engine" in self.__dict__:
            self.engine.dispose()
