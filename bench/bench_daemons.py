"""Scale-out benchmark: 1, 2 and 4 dispatcher processes sharing one PostgreSQL database.

Run: .venv/bin/python -m bench.bench_daemons [--quick] [--no-readme]

Each process runs ``Dispatcher(...).dispatch_due()`` (the daemon's unit of work) with the
in-memory channel, batches of 200, on the same 50,000 due messages: a fresh copy of one template
database for every run, so each run starts from identical tables. The processes start together
(a barrier, after their imports and first connection) and the clock runs from the first start to
the last finish. Every run checks that no message was handed to a channel twice: the message ids
the processes sent, put together, are each of the 50,000 exactly once, and the database says the
same (every row ``sent``, one ``sent`` event per row). The section of bench/README.md between its
markers is rewritten (not with --quick or --no-readme).

PostgreSQL comes from AFTERCARE_BENCH_POSTGRES_URL (default: the tests' local server); the
benchmark creates and drops its own databases there.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import textwrap
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url

from aftercare import db
from aftercare.app import App
from aftercare.channels.memory import MemoryChannel
from aftercare.clock import ManualClock
from aftercare.config import Settings
from aftercare.dispatch import Dispatcher, DispatchOptions
from aftercare.enrollment import parse_request
from aftercare.models import Event, Message
from aftercare.store.enrollments import enroll_many
from bench.common import machine, write_section

POSTGRES_URL = os.environ.get(
    "AFTERCARE_BENCH_POSTGRES_URL",
    os.environ.get(
        "AFTERCARE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
)
NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


def _settings(url: str) -> Settings:
    # Every text is made due at once: the per-number SMS cap (one a day) would hold most back.
    return Settings(database_url=url, quiet_hours=None, sms_daily_cap=0, sms_weekly_cap=0)


PROCESSES = (1, 2, 4)
BATCH = 200
SENDERS = 4  # as in bench_dispatch's in-memory throughput
TARGET_SPEEDUP = 1.6  # 2 processes over 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WIDTH = 100  # README prose is wrapped at 100 columns


# --- databases -------------------------------------------------------------------------------


class Server:
    """Creates and drops databases on the PostgreSQL server (autocommit, outside them)."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = create_engine(self.url, isolation_level="AUTOCOMMIT")

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def create(self, name: str, template: str | None = None) -> str:
        clause = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"{clause}')
        return self.url_of(name)

    def drop(self, name: str) -> None:
        with self.admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextmanager
    def database(self, template: str | None = None) -> Iterator[str]:
        name = f"aftercare_bench_{uuid.uuid4().hex[:10]}"
        url = self.create(name, template)
        try:
            yield url
        finally:
            self.drop(name)

    def version(self) -> str:
        with self.admin.connect() as connection:
            return str(connection.scalar(text("SHOW server_version")))


def build_template(url: str, count: int) -> None:
    """Migrate, enroll SMS-only patients, then leave exactly ``count`` messages due at NOW (the
    rest cancelled), vacuumed and analysed so every copy starts alike."""
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    app = App(_settings(url), ManualClock(NOW))
    patients = count // 9 + 1  # a kyphoplasty timeline plans 9 texts
    for start in range(0, patients, 1000):
        requests = [
            parse_request(
                {
                    "first_name": f"P{i}",
                    "phone": f"+1202555{i % 10_000:04d}",
                    "timezone": "UTC",
                    "procedure": "kyphoplasty",
                    "discharged_at": (NOW - timedelta(hours=1)).isoformat(),
                    "channels": "sms",
                    "external_id": f"MRN{i}",
                },
                app.catalog,
                NOW,
            )
            for i in range(start, min(start + 1000, patients))
        ]
        with app.sessions.begin() as session:
            enroll_many(session, requests, app.settings, NOW, "bench")
    with app.sessions.begin() as session:
        session.execute(update(Message).values(status="cancelled", next_attempt_at=None))
        session.execute(
            update(Message)
            .where(Message.id <= count)
            .values(
                status="pending",
                due_at=NOW,
                next_attempt_at=NOW,
                expires_at=NOW + timedelta(days=1),
            )
        )
    app.close()
    vacuum = create_engine(make_url(url), isolation_level="AUTOCOMMIT")
    with vacuum.connect() as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    vacuum.dispose()


# --- one dispatcher process ------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process on this machine (a PostgreSQL backend), if readable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _machine_busy() -> float:
    """CPU seconds every process on this machine has used since boot (all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / CLOCK_TICKS


def dispatcher_process(url: str, worker: str, barrier: Barrier, results: Any) -> None:
    """Warm up (imports, timelines, a connection), wait for the others, dispatch until nothing
    is due, report what was sent and what it cost."""
    app = App(_settings(url), ManualClock(NOW))
    channel = MemoryChannel("sms")
    dispatcher = Dispatcher(
        app.sessions,
        {"sms": channel},
        app.catalog,
        app.settings,
        app.clock,
        worker,
        DispatchOptions(batch_size=BATCH, senders=SENDERS),
    )
    with app.engine.connect() as connection:
        backend = int(connection.scalar(text("SELECT pg_backend_pid()")) or 0)
    backend_before = _cpu_seconds(backend)
    barrier.wait()
    started, cpu = time.monotonic(), time.process_time()
    tally = dispatcher.dispatch_due()
    finished, cpu = time.monotonic(), time.process_time() - cpu
    backend_after = _cpu_seconds(backend)
    dispatcher.close()
    app.close()
    backend_cpu = None
    if backend_before is not None and backend_after is not None:
        backend_cpu = backend_after - backend_before
    results.put(
        {
            "worker": worker,
            "started": started,
            "finished": finished,
            "sent_ids": [m.message_id for m in channel.sent],
            "tally": dict(tally),
            "cpu": cpu,
            "backend_cpu": backend_cpu,
        }
    )


# --- one run: n processes on a fresh copy ------------------------------------------------------


@dataclass(frozen=True)
class Run:
    processes: int
    messages: int
    seconds: float
    python_cpu: float  # seconds, all dispatcher processes
    postgres_cpu: float | None  # seconds, their PostgreSQL backends
    machine_cpu: float  # seconds, every process on the machine, over about the same time
    shares: tuple[int, ...]  # messages sent by each process

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds


def run(server: Server, template: str, processes: int, count: int) -> Run:
    context = multiprocessing.get_context("spawn")
    with server.database(template) as url:
        # The parent passes the barrier with the children, to read the machine's CPU counters.
        barrier, results = context.Barrier(processes + 1), context.Queue()
        children = [
            context.Process(target=dispatcher_process, args=(url, f"bench-{i}", barrier, results))
            for i in range(processes)
        ]
        for child in children:
            child.start()
        barrier.wait(timeout=120)
        busy_before = _machine_busy()
        reports = [results.get(timeout=600) for _ in children]
        busy_after = _machine_busy()
        for child in children:
            child.join(timeout=60)
            if child.exitcode != 0:
                raise SystemExit(f"a dispatcher process failed (exit code {child.exitcode})")
        check_exactly_once(url, reports, count)
    backend = [r["backend_cpu"] for r in reports]
    return Run(
        processes=processes,
        messages=count,
        seconds=max(r["finished"] for r in reports) - min(r["started"] for r in reports),
        python_cpu=sum(r["cpu"] for r in reports),
        postgres_cpu=None if None in backend else sum(backend),
        machine_cpu=busy_after - busy_before,
        shares=tuple(sorted((len(r["sent_ids"]) for r in reports), reverse=True)),
    )


def check_exactly_once(url: str, reports: list[dict[str, Any]], count: int) -> None:
    """Every due message was handed to a channel once, by one process, and recorded once."""
    sent = [i for r in reports for i in r["sent_ids"]]
    problems = []
    if len(sent) != count or len(set(sent)) != count:
        problems.append(f"{len(sent)} sends of {len(set(sent))} distinct messages")
    engine = db.make_engine(url)
    with engine.connect() as connection:
        statuses = dict(
            connection.execute(
                select(Message.status, func.count())
                .where(Message.status != "cancelled")
                .group_by(Message.status)
            ).all()
        )
        twice = connection.scalar(
            select(func.count()).select_from(
                select(Event.message_id)
                .where(Event.kind == "sent")
                .group_by(Event.message_id)
                .having(func.count() > 1)
                .subquery()
            )
        )
    engine.dispose()
    if statuses != {"sent": count}:
        problems.append(f"rows by status: {statuses}")
    if twice:
        problems.append(f"{twice} messages recorded as sent twice")
    if problems:
        raise SystemExit("duplicates or losses: " + "; ".join(problems))


# --- the whole benchmark -----------------------------------------------------------------------


def measure(count: int, repeats: int) -> tuple[dict[int, list[Run]], str]:
    """Runs alternate (1, 2, 4, 1, 2, 4, ...) so each size sees the same machine."""
    server = Server(POSTGRES_URL)
    name = f"aftercare_bench_template_{uuid.uuid4().hex[:8]}"
    template = server.create(name)
    runs: dict[int, list[Run]] = {n: [] for n in PROCESSES}
    try:
        build_template(template, count)
        for _ in range(repeats):
            for processes in PROCESSES:
                result = run(server, name, processes, count)
                runs[processes].append(result)
                print(
                    f"{processes} process(es): {result.per_second:,.0f} messages/s "
                    f"({result.seconds:.2f} s; shares {result.shares})",
                    flush=True,
                )
        version = server.version()
    finally:
        server.drop(name)
        server.admin.dispose()
    return runs, version


@dataclass(frozen=True)
class Summary:
    """Medians (and the best rate) over the runs of one size; CPU in cores busy over the run."""

    rate: float
    best: float
    dispatchers: float
    backends: float | None
    elsewhere: float | None  # every other process on the machine, PostgreSQL's own included
    shares: tuple[int, ...]  # of the last run

    @classmethod
    def of(cls, runs: list[Run]) -> Summary:
        backends = [r.postgres_cpu / r.seconds for r in runs if r.postgres_cpu is not None]
        known = len(backends) == len(runs)
        return cls(
            rate=statistics.median(r.per_second for r in runs),
            best=max(r.per_second for r in runs),
            dispatchers=statistics.median(r.python_cpu / r.seconds for r in runs),
            backends=statistics.median(backends) if known else None,
            elsewhere=statistics.median(
                (r.machine_cpu - r.python_cpu - (r.postgres_cpu or 0)) / r.seconds for r in runs
            )
            if known
            else None,
            shares=runs[-1].shares,
        )


def table(runs: dict[int, list[Run]], count: int, postgres: str) -> str:
    repeats = len(runs[PROCESSES[0]])
    summary = {n: Summary.of(rs) for n, rs in runs.items()}
    intro = textwrap.fill(
        "`python -m bench.bench_daemons` (about five minutes; `--quick` for a smoke run at 5,000 "
        "messages, which leaves this section alone) rewrites this section. 1, 2 and 4 processes "
        "(`multiprocessing`, spawned), each running `Dispatcher.dispatch_due()` — the daemon's "
        f"unit of work — with the in-memory channel, batches of {BATCH} and {SENDERS} sending "
        f"threads, share {count:,} due SMS rows in one PostgreSQL database (claims with "
        "`FOR UPDATE SKIP LOCKED`). Every run gets a fresh copy of one template database; the "
        "processes start together after their imports and first connection, and the time runs "
        "from the first start to the last finish. Every run is checked, or the benchmark stops: "
        f"the ids the processes handed to their channels are each of the {count:,} exactly "
        "once, every row is `sent`, and each has one `sent` event. CPU is read from `/proc`: "
        "the dispatcher processes, their PostgreSQL backends, and everything else on the "
        "machine over the same time.",
        WIDTH,
    )
    measured = textwrap.fill(
        f"Measured {machine()}, PostgreSQL {postgres} on the same machine. "
        f"Median and best of {repeats} runs, sizes alternating.",
        WIDTH,
    )
    lines = [
        "## Several dispatchers on PostgreSQL",
        "",
        intro,
        "",
        measured,
        "",
        "| processes | messages/s | best | speed-up over 1 | sent by each (last run) | "
        "cores busy: dispatchers | their PostgreSQL backends | everything else | duplicates |",
        "| ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for n, row in summary.items():
        lines.append(
            f"| {n} | {row.rate:,.0f} | {row.best:,.0f} | {row.rate / summary[1].rate:.2f}× | "
            f"{' / '.join(f'{s:,}' for s in row.shares)} | {row.dispatchers:.2f} | "
            f"{_maybe(row.backends)} | {_maybe(row.elsewhere)} | 0 |"
        )
    return "\n".join([*lines, "", *_reading(summary)])


def _maybe(cores: float | None) -> str:
    return "n/a" if cores is None else f"{cores:.2f}"


def _reading(summary: dict[int, Summary]) -> list[str]:
    one, two = summary[1], summary[2]
    speedup = two.rate / one.rate
    verdict = "met" if speedup >= TARGET_SPEEDUP else "**missed**"
    cores = os.cpu_count() or 1
    text = [
        f"**2 processes over 1: {speedup:.2f}×** (goal {TARGET_SPEEDUP}×: {verdict}). With the "
        "in-memory channel nothing waits on a network: every message is CPU work, in Python "
        "(claiming, rendering the template, building the rows, SQLAlchemy) and in the "
        "PostgreSQL backend (locking, updating, inserting events, committing), and the two take "
        f"turns. PostgreSQL runs on the same {cores} cores as the dispatchers."
    ]
    if one.backends is not None:
        per_message = (one.dispatchers + one.backends) / one.rate  # CPU seconds a message
        ceiling = cores / per_message
        text.append(
            f"One process keeps {one.dispatchers + one.backends:.2f} cores busy "
            f"({one.dispatchers:.2f} in Python, {one.backends:.2f} in its backend): "
            f"{per_message * 1000:.2f} ms of CPU a message, so {cores} cores can do at most "
            f"about {ceiling:,.0f} messages/s, {ceiling / one.rate:.2f}× one process; that is "
            "the most a second process can add."
        )
    if two.elsewhere is not None:
        text.append(
            f"Two processes keep {two.dispatchers + (two.backends or 0):.2f} cores busy; the "
            f"rest of the machine (other programs, PostgreSQL's WAL writer and autovacuum) "
            f"took {two.elsewhere:.2f} cores during those runs, and what is left between that "
            "and the ceiling goes to the two dispatchers waiting on each other: the same index "
            "pages, the same WAL flushes."
        )
    text.append(
        f"Four processes on {cores} cores add contention, not throughput. With a real provider "
        "the picture changes: a dispatcher spends most of each message waiting on the network "
        "(tens of milliseconds, with little CPU), so more processes, and more sending threads, "
        "multiply throughput until the provider's rate limit or the database's CPU is the "
        "limit."
    )
    history = (
        "**History.** Before this benchmark, each claim also ordered by id (PostgreSQL sorted "
        "every due row for every batch of 200: 57 ms at 50,000 due) and expiry ran once a "
        "batch (a read of every due row each time). One process then did 2,469 messages/s "
        "here with 9.4 s of backend CPU for the 50,000; with both fixed, about 3,000–3,300 "
        "with 5 s, measured back to back on the same quiet machine."
    )
    return [textwrap.fill(" ".join(text), WIDTH), "", textwrap.fill(history, WIDTH)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 messages, one run each")
    parser.add_argument("--no-readme", action="store_true", help="print the section only")
    args = parser.parse_args()
    count, repeats = (5_000, 1) if args.quick else (50_000, 3)
    runs, postgres = measure(count, repeats)
    section = table(runs, count, postgres)
    print(section)
    if not args.quick and not args.no_readme:
        write_section("daemons", section)


if __name__ == "__main__":
    main()
