"""Dispatch benchmarks: throughput (in-memory channel; real SDK against the fake Twilio server),
lag from due time to send with the daemon idle, and daemon memory with a million pending rows.

Run: .venv/bin/python -m bench.bench_dispatch [--quick]
Each measurement runs in a fresh subprocess so memory figures do not mix.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from aftercare import db
from aftercare.app import App
from aftercare.channels.base import Outgoing, Receipt
from aftercare.channels.memory import MemoryChannel
from aftercare.clock import ManualClock, SystemClock
from aftercare.config import Settings
from aftercare.daemon import Daemon
from aftercare.dispatch import Dispatcher, DispatchOptions
from aftercare.enrollment import parse_request
from aftercare.models import Message
from aftercare.store.enrollments import enroll_many
from bench.common import machine, write_section

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
ZONES = ("America/New_York", "America/Chicago", "America/Los_Angeles", "Europe/Madrid", "UTC")


def _app(folder: Path, clock: Any, **settings: Any) -> App:
    engine_url = f"sqlite:///{folder / 'bench.db'}"
    # Every text is made due at once: the per-number cap (one a day) would hold most back.
    caps_off = {"sms_daily_cap": 0, "sms_weekly_cap": 0}
    return App(Settings(database_url=engine_url, quiet_hours=None, **caps_off | settings), clock)


def _enroll(app: App, patients: int, channels: str = "sms,email") -> None:
    now = app.clock.now()
    batch = []
    for i in range(patients):
        fields = {
            "first_name": f"P{i}",
            "phone": f"+1202555{i % 10_000:04d}",
            "email": f"p{i}@example.org",
            "timezone": ZONES[i % len(ZONES)],
            "procedure": ("kyphoplasty", "vertebroplasty")[i % 2],
            "discharged_at": (now - timedelta(hours=1)).isoformat(),
            "channels": channels,
            "external_id": f"MRN{i}",
        }
        batch.append(parse_request(fields, app.catalog, now))
        if len(batch) == 1000 or i == patients - 1:
            with app.sessions.begin() as session:
                enroll_many(session, batch, app.settings, now, "bench")
            batch = []


def _make_all_due(app: App, limit: int, now: datetime) -> None:
    """Every message due now (and not expiring), ``limit`` of them pending, the rest cancelled."""
    with app.sessions.begin() as session:
        session.execute(update(Message).values(status="cancelled"))
        session.execute(
            update(Message)
            .where(Message.id <= limit)
            .values(
                status="pending",
                due_at=now,
                next_attempt_at=now,
                expires_at=now + timedelta(days=1),
            )
        )


def throughput_memory(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        clock = ManualClock(NOW)
        app = _app(Path(folder), clock)
        _enroll(app, count // 18 + 1)
        _make_all_due(app, count, NOW)
        channels = {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")}
        dispatcher = Dispatcher(
            app.sessions,
            channels,
            app.catalog,
            app.settings,
            clock,
            "bench",
            DispatchOptions(batch_size=200, senders=4),
        )
        started = time.perf_counter()
        tally = dispatcher.dispatch_due()
        elapsed = time.perf_counter() - started
        dispatcher.close()
        app.close()
    sent = tally["sent"]
    assert sent == count, tally
    return {"messages": sent, "seconds": round(elapsed, 2), "per_second": round(sent / elapsed)}


@contextmanager
def _fake_twilio_process() -> Iterator[dict[str, str]]:
    """The fake Twilio API in its own process (as a provider would be), answering on loopback."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.twilio"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER

        yield {"url": url, "sid": ACCOUNT_SID, "token": AUTH_TOKEN, "from": FROM_NUMBER}
    finally:
        process.terminate()
        process.wait(timeout=10)


def throughput_twilio(count: int, senders: int = 8) -> dict[str, Any]:
    """Due SMS claimed, sent with the real SDK to the fake Twilio process, and recorded."""
    from aftercare.channels.sms import SmsChannel

    with tempfile.TemporaryDirectory() as folder, _fake_twilio_process() as fake:
        clock = ManualClock(NOW)
        app = _app(
            Path(folder),
            clock,
            twilio_account_sid=fake["sid"],
            twilio_auth_token=fake["token"],
            twilio_from_number=fake["from"],
            twilio_api_url=fake["url"],
        )
        _enroll(app, count // 9 + 1, channels="sms")
        _make_all_due(app, count, NOW)
        dispatcher = Dispatcher(
            app.sessions,
            {"sms": SmsChannel(app.settings)},
            app.catalog,
            app.settings,
            clock,
            "bench",
            DispatchOptions(batch_size=200, senders=senders),
        )
        started = time.perf_counter()
        tally = dispatcher.dispatch_due()
        elapsed = time.perf_counter() - started
        dispatcher.close()
        app.close()
    assert tally["sent"] == count, tally
    return {
        "messages": count,
        "senders": senders,
        "seconds": round(elapsed, 2),
        "per_second": round(count / elapsed),
    }


def bare_sdk(count: int, threads: int = 1) -> dict[str, Any]:
    """The ceiling: the twilio SDK creating messages in a loop against the same fake, no
    database at all (the same transport as the SMS channel, so the same keep-alive)."""
    from concurrent.futures import ThreadPoolExecutor

    from twilio.rest import Client

    from aftercare.channels.twilio_http import TwilioTransport

    with _fake_twilio_process() as fake:
        local = threading.local()

        def send(i: int) -> None:
            if not hasattr(local, "client"):
                local.client = Client(
                    fake["sid"], fake["token"], http_client=TwilioTransport(fake["url"], 30)
                )
            local.client.messages.create(
                to=f"+1202555{i % 10_000:04d}", from_=fake["from"], body="x" * 120
            )

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(send, range(count)))
        elapsed = time.perf_counter() - started
    return {
        "messages": count,
        "threads": threads,
        "seconds": round(elapsed, 2),
        "per_second": round(count / elapsed),
    }


class _Stamping(MemoryChannel):
    """Remembers when (wall clock) each message was handed over."""

    def __init__(self) -> None:
        super().__init__("sms")
        self.at: dict[int, float] = {}

    def send(self, message: Outgoing) -> Receipt:
        self.at[message.message_id] = time.time()
        return super().send(message)


def lag(messages: int, spread: float) -> dict[str, Any]:
    """Messages due at random moments over ``spread`` seconds; an idle daemon sends them."""
    with tempfile.TemporaryDirectory() as folder:
        app = _app(Path(folder), SystemClock())
        _enroll(app, messages // 9 + 1, channels="sms")
        start = datetime.now(UTC) + timedelta(seconds=2)
        rng = random.Random(1)
        due = {i: start + timedelta(seconds=rng.uniform(0, spread)) for i in range(1, messages + 1)}
        with app.sessions.begin() as session:
            session.execute(update(Message).values(status="cancelled"))
            for message_id, at in due.items():
                session.execute(
                    update(Message)
                    .where(Message.id == message_id)
                    .values(
                        status="pending",
                        due_at=at,
                        next_attempt_at=at,
                        expires_at=at + timedelta(hours=1),
                    )
                )
        channel = _Stamping()
        dispatcher = Dispatcher(
            app.sessions, {"sms": channel}, app.catalog, app.settings, app.clock, "bench"
        )
        daemon = Daemon(dispatcher, poll=30)  # polling alone would give lags of up to 30 s
        daemon.start()
        deadline = time.time() + spread + 30
        while len(channel.at) < messages and time.time() < deadline:
            time.sleep(0.2)
        daemon.stop()
        app.close()
    lags = sorted(channel.at[i] - due[i].timestamp() for i in due if i in channel.at)
    assert len(lags) == messages, f"only {len(lags)} of {messages} sent"
    return {
        "messages": messages,
        "p50_ms": round(statistics.median(lags) * 1000),
        "p99_ms": round(lags[int(len(lags) * 0.99) - 1] * 1000),
        "max_ms": round(lags[-1] * 1000),
    }


def memory_pending(pending: int, due_now: int = 2000) -> dict[str, Any]:
    """Peak RSS of `aftercare run --once --dry-run` over a database with ``pending`` messages,
    ``due_now`` of them due (sent through the console channel), the rest in the future."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        engine.dispose()
        _bulk_pending(path, pending, due_now)
        command = [sys.executable, "-m", "aftercare", "run", "--once", "--dry-run"]
        env = {"AFTERCARE_DATABASE_URL": f"sqlite:///{path}", "PATH": "/usr/bin:/bin"}
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        elapsed = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "pending": pending,
        "peak_rss_mb": round(peak_kb / 1024, 1),
        "seconds": round(elapsed, 2),
        "output": done.stdout.strip().splitlines()[-1],
    }


def _bulk_pending(path: Path, pending: int, due_now: int) -> None:
    """A million rows the quick way (raw sqlite3): one patient, one enrollment, future messages."""
    import sqlite3

    connection = sqlite3.connect(path)
    now = NOW.replace(tzinfo=None)
    with connection:
        connection.execute(
            "INSERT INTO patient (id, first_name, phone, timezone, language, created_at) "
            "VALUES (1, 'Bench', '+12025550100', 'UTC', 'en', ?)",
            (now,),
        )
        connection.execute(
            "INSERT INTO enrollment (id, patient_id, procedure, schedule_version, channels, "
            "discharged_at, status, created_at, updated_at) "
            "VALUES (1, 1, 'kyphoplasty', 1, 'sms', ?, 'active', ?, ?)",
            (now, now, now),
        )
        far = datetime(2030, 1, 1, tzinfo=UTC).replace(tzinfo=None)
        soon = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=1)
        rows = (
            (1, "no-heavy-lifting", i, "sms", at, at, at + timedelta(days=1), "pending", 0, at)
            for i in range(pending)
            for at in [soon if i < due_now else far]
        )
        connection.executemany(
            "INSERT INTO message (enrollment_id, step, occurrence, channel, due_at, planned_at, "
            "expires_at, status, attempts, next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    connection.close()


MEASUREMENTS = {
    "throughput_memory": throughput_memory,
    "throughput_twilio": throughput_twilio,
    "bare_sdk": bare_sdk,
    "lag": lag,
    "memory_pending": memory_pending,
}


def _in_subprocess(name: str, **kwargs: Any) -> dict[str, Any]:
    code = (
        f"import json; from bench.bench_dispatch import MEASUREMENTS; "
        f"print(json.dumps(MEASUREMENTS[{name!r}](**{kwargs!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def table(r: dict[str, Any]) -> str:
    def met(ok: bool) -> str:
        return "met" if ok else "**missed**"

    mem, http, lag_ = r["throughput_memory"], r["throughput_twilio"], r["lag"]
    bare1, bare8, rss = r["bare_sdk_1_thread"], r["bare_sdk_8_threads"], r["memory_pending"]
    ceiling = max(bare1["per_second"], bare8["per_second"])
    rows = [
        (
            "due messages claimed, sent, recorded: in-memory channel, SQLite",
            f"{mem['messages']:,} in {mem['seconds']} s = **{mem['per_second']:,}/s**",
            "≥ 2,000/s",
            met(mem["per_second"] >= 2000),
        ),
        (
            "the same through the fake Twilio API over HTTP (real SDK, 8 senders, keep-alive)",
            f"{http['messages']:,} in {http['seconds']} s = **{http['per_second']:,}/s**",
            "≥ 600/s",
            met(http["per_second"] >= 600),
        ),
        (
            "bare SDK in a loop against the same fake, no database (1 thread)",
            f"{bare1['per_second']:,}/s",
            "ceiling",
            "",
        ),
        ("bare SDK, 8 threads", f"{bare8['per_second']:,}/s", "ceiling", ""),
        ("aftercare over HTTP ÷ bare-SDK ceiling", f"{http['per_second'] / ceiling:.2f}", "", ""),
        (
            "lag from due time to send, daemon idle (p50 / p99 / max)",
            f"{lag_['p50_ms']} / **{lag_['p99_ms']}** / {lag_['max_ms']} ms "
            f"({lag_['messages']} messages)",
            "p99 < 1 s",
            met(lag_["p99_ms"] < 1000),
        ),
        (
            f"`run --once` peak RSS, {rss['pending']:,} pending rows ({rss['output']})",
            f"**{rss['peak_rss_mb']} MB**",
            "< 150 MB",
            met(rss["peak_rss_mb"] < 150),
        ),
    ]
    lines = [
        f"Measured {machine()}.",
        "",
        "| measurement | result | target | |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    results = {
        "throughput_memory": _in_subprocess("throughput_memory", count=20_000 // scale),
        "throughput_twilio": _in_subprocess("throughput_twilio", count=20_000 // scale),
        "bare_sdk_1_thread": _in_subprocess("bare_sdk", count=5_000 // scale, threads=1),
        "bare_sdk_8_threads": _in_subprocess("bare_sdk", count=5_000 // scale, threads=8),
        "lag": _in_subprocess("lag", messages=200 // scale, spread=10.0),
        "memory_pending": _in_subprocess("memory_pending", pending=1_000_000 // scale),
    }
    section = table(results)
    print(section)
    if not (args.quick or args.no_readme):
        write_section("dispatch", section)


if __name__ == "__main__":
    main()
