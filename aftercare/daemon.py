"""``aftercare run``: APScheduler as the clock around :class:`Dispatcher`.

One job, ``dispatch``. After each run it is moved to the next due time (so an idle daemon sends
a message within moments of its due time) but never further than ``poll`` seconds away (so rows
enrolled by other processes are seen). The rows in the database are the schedule; APScheduler
holds nothing that would be lost in a crash.
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
from sqlalchemy.exc import OperationalError

from aftercare.db import transaction
from aftercare.dispatch import Dispatcher, first_line
from aftercare.errors import AftercareError
from aftercare.store import claims, workers

log = logging.getLogger("aftercare.daemon")


class Daemon:
    def __init__(self, dispatcher: Dispatcher, poll: float = 5.0, single: bool = False) -> None:
        self.dispatcher = dispatcher
        self.poll = poll
        self.single = single  # the only dispatcher of its database (SQLite)
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
        say_stopped(self.dispatcher, self.started_at)
        self.dispatcher.close()

    def next_run_time(self) -> datetime | None:
        job = self._scheduler.get_job("dispatch")
        return None if job is None else job.next_run_time

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stop_requested.set()

    def tick(self) -> Counter[str]:
        """One run of the dispatch job: settle crashed sends, send what is due, plan the wake-up."""
        try:
            tally = catch_up(self.dispatcher, self.started_at, self.single)
        except OperationalError as exc:
            # The database went away (restart, failover, killed connection): one line, no
            # traceback, whose SQL parameters could hold phone numbers. The next tick retries.
            log.warning("dispatch tick failed, database unavailable (%s)", first_line(exc))
            tally, self.failed_ticks = Counter(), self.failed_ticks + 1
        except Exception:  # a bug; the next tick tries again
            log.exception("dispatch tick failed")
            tally, self.failed_ticks = Counter(), self.failed_ticks + 1
        self.last_tick = self.dispatcher.clock.now()
        self.ticks += 1
        tally = +tally  # drop zero counts: an idle tick logs nothing
        self.outcomes.update(tally)
        if tally:
            log.info("dispatched %s", " ".join(f"{k}={v}" for k, v in sorted(tally.items())))
        if not self.stop_requested.is_set():
            self._schedule_next()
        return tally

    def _schedule_next(self) -> None:
        now = datetime.now(UTC)
        wake = now + timedelta(seconds=self.poll)
        try:
            due = next_due(self.dispatcher)
        except OperationalError as exc:
            log.warning("could not read the next due time (%s)", first_line(exc))
            due = None
        except Exception:
            log.exception("could not read the next due time")
            due = None
        if due is not None:
            wake = max(now, min(wake, due))
        with self._replanning:
            if not self.stop_requested.is_set():
                self._scheduler.modify_job("dispatch", next_run_time=wake)


def catch_up(dispatcher: Dispatcher, started_at: datetime, single: bool) -> Counter[str]:
    """Reconcile stale claims, then send everything due. When this is the only dispatcher
    (SQLite, see :func:`sqlite_dispatch_lock`) any claim made before this process started is
    stale; otherwise a claim is stale when its lease has run out."""
    tally: Counter[str] = Counter()
    if single:
        tally.update(dispatcher.reconcile(stale_before=started_at))
    else:
        tally.update(dispatcher.reconcile())
    tally.update(dispatcher.dispatch_due())
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
    except OperationalError as exc:
        log.warning("could not record the stop (%s)", first_line(exc))


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
