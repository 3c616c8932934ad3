"""Real ``aftercare`` processes for tests: the daemon or the web server in their own process,
logging to a file (a pipe nobody reads could fill up and stall them), and a PostgreSQL database
that refuses every write (what a failed-over replica or a full disk looks like to aftercare)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from aftercare import db
from tests.conftest import throwaway_postgres_database


@dataclass
class Process:
    popen: subprocess.Popen[str]
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, as systemd sends it; the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError(f"did not stop on SIGTERM:\n{self.output()}") from None


@contextmanager
def aftercare(log: Path, *args: str, env: dict[str, str], cwd: Path) -> Iterator[Process]:
    """``aftercare ARGS`` in its own process; killed at the end if it is still running."""
    with log.open("w") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", "aftercare", *args],
            env=os.environ | env,
            cwd=cwd,
            stdout=sink,
            stderr=sink,
            text=True,
        )
    process = Process(popen, log)
    try:
        yield process
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(predicate: Callable[[], bool], seconds: float = 30) -> None:
    """Waits for another process to do something (not for a schedule): polls with a deadline."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.ConnectionError:
        return False
    return True


@contextmanager
def migrated_postgres() -> Iterator[str]:
    """A migrated PostgreSQL database of the test's own (its URL)."""
    with throwaway_postgres_database() as url:
        engine = db.make_engine(url)
        db.upgrade(engine)
        engine.dispose()
        yield url


def make_read_only(url: str) -> None:
    """Every new session on the database is read-only from now on: writes fail as they would
    on a hot standby (psycopg's ReadOnlySqlTransaction)."""
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'
        )
    admin.dispose()
