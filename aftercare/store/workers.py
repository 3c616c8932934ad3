"""Dispatchers' heartbeats: which daemons run, and when one last dispatched."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from aftercare.models import Worker

# A stopped or vanished daemon's heartbeat is kept this long, for `aftercare stats`.
WORKER_MEMORY = timedelta(days=7)


def heartbeat(
    session: Session, worker_id: str, started_at: datetime, now: datetime, stopped: bool = False
) -> None:
    """Say ``worker_id`` is alive at ``now`` (and, with ``stopped``, that it stopped cleanly)."""
    worker = session.get(Worker, worker_id)
    if worker is None:
        # A new process: forget the heartbeats of processes long gone.
        session.execute(delete(Worker).where(Worker.last_tick_at < now - WORKER_MEMORY))
        worker = Worker(id=worker_id, started_at=started_at, last_tick_at=now)
        session.add(worker)
    worker.last_tick_at = now
    if stopped:
        worker.stopped_at = now


def last_tick(session: Session) -> datetime | None:
    """When any dispatcher last ran a pass."""
    return session.scalar(select(func.max(Worker.last_tick_at)))


def ping(session: Session) -> None:
    """A round trip to the database; raises SQLAlchemyError if it does not answer."""
    session.execute(text("SELECT 1"))
