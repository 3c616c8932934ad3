"""``aftercare run``: APScheduler as the clock around :class:`Dispatcher`.

One job, ``dispatch``. After each run it is moved to the next due time (so an idle daemon sends
a message within moments of its due time) but never further than ``poll`` seconds away (so rows
enrolled by other processes are seen). The rows in the database are the schedule; APScheduler
holds nothing that would be lost in a crash.

While passes fail (the database refuses writes: a full disk, a read-only standby) a due message
would bring the next pass forward at once, again and again: instead the wait grows from ``poll``
to :data:`MAX_BACKOFF`, and the failure is logged once a minute, not once a pass.
"""

from __future__ import annotations

import fcntl
import logging
import signal
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from aftercare.db import transaction
from aftercare.dispatch import Dispatcher, first_line
from aftercare.errors import AftercareError
from aftercare.escalation import escalate_due
from aftercare.silence import notice_silence
from aftercare.store import claims, workers

log = logging.getLogger("aftercare.daemon")

MAX_BACKOFF = 60.0  # seconds between passes while they keep failing
ERROR_EVERY = timedelta(minutes=1)  # one log line per this while failing


class Daemon:
    def __init__(
        self,
        dispatcher: Dispatcher,
        poll: float = 5.0,
        single: bool = False,
        database_file: Path | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.poll = poll
        self.single = single  # the only dispatcher of its database (SQLite)
        # The SQLite file dispatched from: if it is deleted, SQLite would go on with the open
        # (unlinked) file and the next `enroll` would create a new one nobody sends from.
        self.database_file = database_file
        self.database_lost = False
        self.failures = 0  # passes failed in a row
        self._failures_logged = 0
        self._last_error_at: datetime | None = None
        self.stop_requested = threading.Event()
        self.started_at = dispatcher.clock.now()
        self.last_tick: datetime | None = None
        # This process's own counts since it started, for its /metrics (web.daemon_metrics).
        self.ticks = 0
        self.failed_ticks = 0
        self.outcomes: Counter[str] = Counter()
        # APScheduler 3's shutdown(wait=True) holds the job store lock while it waits for the
        # running tick, and modify_job needs that lock: a tick that re-plans its wake-up once
        # stop() has begun deadlocks the daemon on SIGTERM. Re-planning and stopping take
        # turns under this lock, so a tick never calls modify_job after stop() began.
        self._replanning = threading.Lock()
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            # Never skip a run because the process was busy or asleep: a late tick still sends.
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def run(self) -> None:
        """Until SIGTERM/SIGINT: then stop claiming, finish in-flight sends, return."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self.start()
        log.info(
            "daemon started worker=%s channels=%s",
            self.dispatcher.worker,
            ",".join(self.dispatcher.channels),
        )
        self.stop_requested.wait()
        log.info("stopping: finishing in-flight sends")
        self.stop()
        log.info("daemon stopped")

    def start(self, paused: bool = False) -> None:
        """Start the scheduler with the dispatch job due at once (catch-up on start)."""
        self._scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=self.poll),
            id="dispatch",
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.start(paused=paused)

    def stop(self) -> None:
        with self._replanning:
            self.stop_requested.set()
        self.dispatcher.stopping.set()
        self._scheduler.shutdown(wait=True)
        if not self.database_lost:  # a new connection would create an empty file in its place
            say_stopped(self.dispatcher, self.started_at)
        self.dispatcher.close()

    def next_run_time(self) -> datetime | None:
        job = self._scheduler.get_job("dispatch")
        return None if job is None else job.next_run_time

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_requested.set()

    def tick(self) -> Counter[str]:
        """One run of the dispatch job: settle crashed sends, send what is due, plan the wake-up."""
        if self.database_file is not None and not self.database_file.exists():
            log.error(
                "the database file %s is gone: stopping (restore it and start again)",
                self.database_file,
            )
            self.database_lost = True
            self.stop_requested.set()
            return Counter()
        try:
            tally = catch_up(self.dispatcher, self.started_at, self.single)
        except SQLAlchemyError as exc:
            # The database went away or refuses writes: one line, no traceback (whose SQL
            # parameters could hold phone numbers). A later pass retries.
            self._failed(f"database error {type(exc).__name__}: {_first_line(exc)}")
            tally = Counter()
        except Exception as exc:  # a bug; a later pass tries again
            if not self.failures:
                log.exception("dispatch pass failed")
            self._failed(f"{type(exc).__name__}")
            tally = Counter()
        else:
            if self.failures:
                log.info("dispatch passes succeed again after %d failed", self.failures)
            self.failures, self._failures_logged, self._last_error_at = 0, 0, None
        self.last_tick = self.dispatcher.clock.now()
        self.ticks += 1
        tally = +tally  # drop zero counts: an idle tick logs nothing
        self.outcomes.update(tally)
        if tally:
            log.info("dispatched %s", " ".join(f"{k}={v}" for k, v in sorted(tally.items())))
        if not self.stop_requested.is_set():
            self._schedule_next()
        return tally

    def backoff(self) -> float:
        """Seconds to the next pass after :attr:`failures` failed ones in a row."""
        return float(min(self.poll * 2 ** max(self.failures - 1, 0), max(MAX_BACKOFF, self.poll)))

    def _failed(self, what: str) -> None:
        self.failures += 1
        self.failed_ticks += 1
        now = self.dispatcher.clock.now()
        if self._last_error_at is not None and now - self._last_error_at < ERROR_EVERY:
            return
        log.error(
            "dispatch pass failed (%s); %d failed in a row, %d since the last line; "
            "next pass in %.1f s",
            what,
            self.failures,
            self.failures - self._failures_logged,
            self.backoff(),
        )
        self._failures_logged, self._last_error_at = self.failures, now

    def _schedule_next(self) -> None:
        now = datetime.now(UTC)
        if self.failures:
            wake = now + timedelta(seconds=self.backoff())  # not at once, even if one is due
        else:
            wake = now + timedelta(seconds=self.poll)
            try:
                due = next_due(self.dispatcher)
            except SQLAlchemyError as exc:
                log.warning("could not read the next due time (%s)", _first_line(exc))
                due = None
            except Exception:
                log.exception("could not read the next due time")
                due = None
            if due is not None:
                wake = max(now, min(wake, due))
        with self._replanning:
            if not self.stop_requested.is_set():
                self._scheduler.modify_job("dispatch", next_run_time=wake)


def _first_line(exc: SQLAlchemyError) -> str:
    """The driver's message (no statement, no parameters), or the type for other errors."""
    return first_line(exc) if isinstance(exc, DBAPIError) else type(exc).__name__


def catch_up(dispatcher: Dispatcher, started_at: datetime, single: bool) -> Counter[str]:
    """Reconcile stale claims, send everything due, escalate urgent alerts nobody
    acknowledged, and notice check-ins left unanswered. When this is the only dispatcher
    (SQLite, see :func:`sqlite_dispatch_lock`) any claim made before this process started is
    stale; otherwise a claim is stale when its lease has run out."""
    tally: Counter[str] = Counter()
    if single:
        tally.update(dispatcher.reconcile(stale_before=started_at))
    else:
        tally.update(dispatcher.reconcile())
    tally.update(dispatcher.dispatch_due())
    tally["escalated"] += escalate_due(
        dispatcher.sessions,
        dispatcher.channels,
        dispatcher.settings,
        dispatcher.clock,
        dispatcher.worker,
    )
    tally["no_answer"] += notice_silence(
        dispatcher.sessions, dispatcher.catalog, dispatcher.clock, dispatcher.worker
    )
    heartbeat(dispatcher, started_at)
    return tally


def heartbeat(dispatcher: Dispatcher, started_at: datetime, stopped: bool = False) -> None:
    """Say this dispatcher is alive (read by /healthz and /metrics)."""
    now = dispatcher.clock.now()
    with transaction(dispatcher.sessions) as session:
        workers.heartbeat(session, dispatcher.worker, started_at, now, stopped)


def say_stopped(dispatcher: Dispatcher, started_at: datetime) -> None:
    """Record a clean exit, so `aftercare stats` shows this dispatcher stopped, not silent.
    Best effort: a database that is down now must not turn a clean stop into a crash."""
    try:
        heartbeat(dispatcher, started_at, stopped=True)
    except SQLAlchemyError as exc:  # unreachable, read-only, or its file deleted
        log.warning("could not record the stop (%s)", _first_line(exc))


def next_due(dispatcher: Dispatcher) -> datetime | None:
    with dispatcher.sessions() as session:
        return claims.next_due(session, dispatcher.channels)


def sqlite_dispatch_lock(database: str) -> IO[str]:
    """Hold an exclusive lock beside the SQLite file for as long as this process dispatches.

    SQLite cannot hand disjoint rows to concurrent dispatchers, and a second one would treat
    the first one's in-flight sends as crashed. So a second daemon refuses to start.
    """
    path = Path(f"{database}.dispatch.lock")
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AftercareError(
            f"another 'aftercare run' is already dispatching from {database} "
            "(SQLite allows one dispatcher; use PostgreSQL to run several)"
        ) from None
    return handle
