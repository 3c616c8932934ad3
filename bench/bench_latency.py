"""Dispatch at real-world latency: aftercare beside the usual design, on a fake Twilio that takes as
long to answer as Twilio does.

Run: .venv-test/bin/python -m bench.bench_latency [--quick] [--no-readme]

Twilio's API answers in about 100-300 ms from a data centre; at that latency throughput is set by
how many sends are in flight, not by CPU. Every measurement runs in a fresh process, against its
own fake Twilio process (``tests/fakes/twilio.py --latency-ms``, a thread per connection, so many
slow requests overlap):

- *aftercare*: the real command, ``aftercare run --once``, in its own process with the README's
  defaults (nothing tuned), on SQLite (or PostgreSQL, one or two daemons at once) holding the due
  SMS. Throughput runs from the first ``claimed`` event to the last ``sent`` one: claimed, sent
  and recorded. CPU and peak RSS are the process's own (``wait4``), less an identical run with
  nothing due (interpreter, imports, timelines), so what is left is the sending.
- *peer*: the usual design, APScheduler 3 with one job per reminder in its SQLAlchemy job store
  and its default 10 executor threads (``bench/bench_peer.py``), the same texts, all due at once;
  timed from ``resume()`` until every job has run.
- *bare SDK*: the twilio SDK and the SMS channel's own HTTP client, creating messages from as
  many threads as aftercare keeps in flight, with no database: the ceiling at that concurrency.

Send lag is when each create request reached the fake, counted from the first one of the run:
how long a message due in a backlog waits once sending has begun. Every run is checked, or the
benchmark stops: each text reached the fake exactly once, and on aftercare's side each row is
``sent`` with the sid the fake gave it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select, update

from aftercare.app import App
from aftercare.clock import SystemClock
from aftercare.config import Settings
from aftercare.models import Event, Message
from bench.bench_dispatch import _enroll, _make_all_due
from bench.common import machine, write_section

ROOT = Path(__file__).resolve().parents[1]
PEER_THREADS = 10  # APScheduler 3's ThreadPoolExecutor default
SMS_PER_PATIENT = 9


# --- the fake Twilio, in its own process ---------------------------------------------------------


@dataclass(frozen=True)
class Fake:
    url: str
    account_sid: str
    auth_token: str
    from_number: str

    def environ(self) -> dict[str, str]:
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_FROM_NUMBER": self.from_number,
            "AFTERCARE_TWILIO_API_URL": self.url,
        }

    def messages(self) -> list[tuple[str, str, str]]:
        """(sid, to, body) of every message the fake accepted, read through its list API."""
        uri: str | None = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json?PageSize=1000"
        found: list[tuple[str, str, str]] = []
        with requests.Session() as session:
            session.auth = (self.account_sid, self.auth_token)
            while uri:
                page = session.get(self.url + uri, timeout=60).json()
                found += [(m["sid"], m["to"], m["body"]) for m in page["messages"]]
                uri = page["next_page_uri"]
        return found

    def arrivals(self) -> list[tuple[float, str]]:
        """(epoch seconds, sender) of every create request, as the fake saw them arrive."""
        from tests.fakes.twilio import ARRIVALS_PATH

        answer = requests.get(
            self.url + ARRIVALS_PATH, auth=(self.account_sid, self.auth_token), timeout=60
        )
        return [(a["at"], a["sender"]) for a in answer.json()["creates"]]


@contextmanager
def fake_twilio(latency_ms: float) -> Iterator[Fake]:
    from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER

    command = [sys.executable, "-m", "tests.fakes.twilio", "--latency-ms", f"{latency_ms:g}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        yield Fake(process.stdout.readline().strip(), ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER)
    finally:
        process.terminate()
        process.wait(timeout=10)


def lag_ms(arrivals: list[float]) -> dict[str, float]:
    """p50 and p99 of each arrival after the first one, in ms."""
    times = sorted(arrivals)
    lags = [(t - times[0]) * 1000 for t in times]
    return {"p50_ms": statistics.median(lags), "p99_ms": lags[max(int(len(lags) * 0.99) - 1, 0)]}


def check_once(fake: Fake, count: int) -> dict[str, Any]:
    """As many texts at the fake as were due, each with its own sid (the callers check the sids
    against what the senders recorded: each text is then one due message, sent once)."""
    messages = fake.messages()
    sids = {sid for sid, _, _ in messages}
    if len(messages) != count or len(sids) != count:
        raise SystemExit(f"{len(messages)} texts at the fake for {count} due")
    return {"at_fake": len(messages), "duplicates": len(messages) - count, "sids": sids}


# --- aftercare: the real command -----------------------------------------------------------------


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'bench.db'}"
        return
    from bench.bench_daemons import POSTGRES_URL, Server

    server = Server(POSTGRES_URL)
    with server.database() as url:
        yield url


def prepare(url: str, count: int) -> None:
    """``count`` SMS due a minute ago (and for a day more), everything else cancelled."""
    from aftercare import db

    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    app = App(Settings(database_url=url, quiet_hours=None), SystemClock())
    _enroll(app, count // SMS_PER_PATIENT + 1, channels="sms")
    _make_all_due(app, count, datetime.now(UTC) - timedelta(minutes=1))
    app.close()


@dataclass(frozen=True)
class Usage:
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    output: str


def run_once(url: str, fake: Fake, extra: dict[str, str], processes: int = 1) -> list[Usage]:
    """``aftercare run --once`` in ``processes`` processes at once; each one's own usage."""
    environment = {**_daemon_environ(url, fake), **extra}
    command = [sys.executable, "-m", "aftercare", "run", "--once"]
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            command,
            env=environment,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(processes)
    ]
    outputs = [_drain(child) for child in children]
    usages = []
    for child, output in zip(children, outputs, strict=True):
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        output.join()
        text = output.result  # type: ignore[attr-defined]
        if child.returncode != 0:
            raise SystemExit(f"aftercare run --once failed ({child.returncode}):\n{text}")
        usages.append(
            Usage(
                time.perf_counter() - started,
                usage.ru_utime + usage.ru_stime,
                usage.ru_maxrss / 1024,
                text.strip().splitlines()[-1],
            )
        )
    return usages


def _daemon_environ(url: str, fake: Fake) -> dict[str, str]:
    """The README's defaults, but for quiet hours and the per-number caps (one text a number a
    day): every text here is made due at once, and the caps would hold most of them back."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AFTERCARE_DATABASE_URL": url,
        "AFTERCARE_QUIET_HOURS": "off",
        "AFTERCARE_SMS_DAILY_CAP": "0",
        "AFTERCARE_SMS_WEEKLY_CAP": "0",
        **fake.environ(),
    }


def _drain(child: subprocess.Popen[str]) -> threading.Thread:
    """Read a child's output as it comes (a full pipe would stall it); ``.result`` when done."""

    def read() -> None:
        assert child.stdout is not None
        reader.result = child.stdout.read()  # type: ignore[attr-defined]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    return reader


def recorded(url: str) -> dict[str, Any]:
    """From the database: when the first claim and the last outcome were recorded; the sids."""
    app = App(Settings(database_url=url), SystemClock())
    with app.sessions() as session:
        first = session.scalar(select(func.min(Event.at)).where(Event.kind == "claimed"))
        last = session.scalar(select(func.max(Event.at)).where(Event.kind == "sent"))
        rows = session.execute(
            select(Message.status, Message.provider_id).where(Message.status != "cancelled")
        ).all()
    app.close()
    assert first is not None and last is not None, "nothing was claimed and sent"
    return {"seconds": (last - first).total_seconds(), "rows": rows}


def aftercare(
    latency_ms: float,
    count: int,
    backend: str = "sqlite",
    processes: int = 1,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    """``count`` due SMS sent by ``processes`` times ``aftercare run --once`` with the defaults."""
    with tempfile.TemporaryDirectory() as folder, database(backend, Path(folder)) as url:
        prepare(url, count)
        with fake_twilio(latency_ms) as fake:
            runs = run_once(url, fake, extra or {}, processes)
            idle = run_once(url, fake, extra or {})[0]  # nothing due: what starting up costs
            once = check_once(fake, count)
            arrivals = [at for at, _ in fake.arrivals()]
        db_side = recorded(url)
    statuses = Counter(status for status, _ in db_side["rows"])
    if statuses != {"sent": count} or {sid for _, sid in db_side["rows"]} != once["sids"]:
        raise SystemExit(f"aftercare: rows {dict(statuses)}; not each sent with its sid")
    seconds = db_side["seconds"]
    return {
        "messages": count,
        "processes": processes,
        "seconds": seconds,
        "per_second": count / seconds,
        "cpu_per_1000": (sum(r.cpu_seconds for r in runs) - processes * idle.cpu_seconds)
        / count
        * 1000,
        "peak_rss_mb": max(r.peak_rss_mb for r in runs),
        "idle_rss_mb": idle.peak_rss_mb,
        "duplicates": once["duplicates"],
        "outputs": [r.output for r in runs],
        **lag_ms(arrivals),
    }


# --- the usual design and the bare SDK -----------------------------------------------------------


def peer(latency_ms: float, count: int, threads: int = PEER_THREADS) -> dict[str, Any]:
    """APScheduler 3, a job per reminder, ``threads`` executor threads (bench_peer's side)."""
    from bench.bench_peer import FakeApi, dispatch_peer, write_file

    with tempfile.TemporaryDirectory() as folder, fake_twilio(latency_ms) as fake:
        work = Path(folder)
        patients = write_file(work / "send.csv", count // SMS_PER_PATIENT + 1)
        api = FakeApi(fake.url, fake.account_sid, fake.auth_token, fake.from_number)
        result = dispatch_peer(patients, work / "jobs.db", api, count, senders=threads)
        check_once(fake, count)  # dispatch_peer checked the jobs' sids against the fake's
        arrivals = [at for at, _ in fake.arrivals()]
    if not result["sids_match"] or result["problems"] or result["jobs_run_twice"]:
        raise SystemExit(f"peer: not every job ran once: {result}")
    return {
        "messages": count,
        "threads": threads,
        "seconds": result["seconds"],
        "per_second": count / result["seconds"],
        "cpu_per_1000": result["cpu_seconds"] / count * 1000,
        "peak_rss_mb": result["peak_rss_mb"],
        "duplicates": 0,
        **lag_ms(arrivals),
    }


def bare_sdk(latency_ms: float, count: int, threads: int, client: str) -> dict[str, Any]:
    """Texts created from ``threads`` threads with no database, through ``client``: "channel"
    (the SMS channel itself: the SDK's async API on its one loop) or "requests" (the SDK's usual
    requests-based client, one per thread, as the peer has it)."""
    with fake_twilio(latency_ms) as fake:
        send, close = _bare_sender(fake, client)
        texts = [(f"+1202555{i % 10_000:04d}", f"text {i} " + "x" * 110) for i in range(count)]
        started, cpu = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda text: send(*text), texts))
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
        close()
        check_once(fake, count)
        arrivals = [at for at, _ in fake.arrivals()]
    return {
        "messages": count,
        "threads": threads,
        "client": client,
        "seconds": seconds,
        "per_second": count / seconds,
        "cpu_per_1000": cpu_seconds / count * 1000,
        "peak_rss_mb": _peak_rss_mb(),
        "duplicates": 0,
        **lag_ms(arrivals),
    }


def _bare_sender(fake: Fake, client: str) -> tuple[Any, Any]:
    if client == "channel":
        from aftercare.channels.base import Outgoing
        from aftercare.channels.sms import SmsChannel

        channel = SmsChannel(
            Settings(
                twilio_account_sid=fake.account_sid,
                twilio_auth_token=fake.auth_token,
                twilio_from_number=fake.from_number,
                twilio_api_url=fake.url,
            )
        )
        ids = iter(range(1, 10**9))

        def via_channel(to: str, body: str) -> None:
            channel.send(Outgoing(next(ids), "sms", to, body, "en"))

        return via_channel, channel.close
    from bench.bench_peer import FakeApi, close_sms, configure_sms, send_sms

    configure_sms(FakeApi(fake.url, fake.account_sid, fake.auth_token, fake.from_number))
    return send_sms, close_sms


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the rate limit, the idle daemon, a million pending rows ------------------------------------


def rate_limit(rate: int, count: int, latency_ms: float) -> dict[str, Any]:
    """``AFTERCARE_SMS_RATE=rate``: the most requests from our sender in any second at the fake."""
    from tests.fakes.twilio import Arrival, busiest_second

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        prepare(url, count)
        with fake_twilio(latency_ms) as fake:
            run_once(url, fake, {"AFTERCARE_SMS_RATE": str(rate)})
            check_once(fake, count)
            arrivals = [Arrival(at, sender) for at, sender in fake.arrivals()]
    times = sorted(a.at for a in arrivals)
    return {
        "rate": rate,
        "messages": count,
        "busiest_second": busiest_second(arrivals, fake.from_number),
        "seconds": times[-1] - times[0],
    }


def idle_lag(latency_ms: float, messages: int, spread: float) -> dict[str, Any]:
    """An idle ``aftercare run`` daemon; messages fall due at random moments over ``spread``
    seconds; lag = when each reached the fake minus its due time."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        prepare(url, messages)
        start = datetime.now(UTC) + timedelta(seconds=5)  # after the daemon is up and idle
        rng = random.Random(1)
        due = {i: start + timedelta(seconds=rng.uniform(0, spread)) for i in range(1, 1 + messages)}
        _set_due(url, due)
        with fake_twilio(latency_ms) as fake:
            environment = _daemon_environ(url, fake)
            command = [sys.executable, "-m", "aftercare", "run", "--poll", "30"]
            daemon = subprocess.Popen(command, env=environment, cwd=ROOT, stderr=subprocess.DEVNULL)
            deadline = time.time() + spread + 40
            while len(fake.arrivals()) < messages and time.time() < deadline:
                time.sleep(0.5)
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(timeout=30)
            check_once(fake, messages)
            arrivals = sorted(at for at, _ in fake.arrivals())
    # Paired in order: the messages fall due far apart (10 s / 100) next to their lag.
    lags = sorted(
        (arrival - due_at.timestamp()) * 1000
        for arrival, due_at in zip(arrivals, sorted(due.values()), strict=True)
    )
    return {
        "messages": messages,
        "p50_ms": statistics.median(lags),
        "p99_ms": lags[int(len(lags) * 0.99) - 1],
        "max_ms": lags[-1],
    }


def _set_due(url: str, due: dict[int, datetime]) -> None:
    app = App(Settings(database_url=url), SystemClock())
    with app.sessions.begin() as session:
        for message_id, at in due.items():
            session.execute(
                update(Message)
                .where(Message.id == message_id)
                .values(due_at=at, next_attempt_at=at, expires_at=at + timedelta(hours=1))
            )
    app.close()


def memory_pending(pending: int, due_now: int, latency_ms: float) -> dict[str, Any]:
    """Peak RSS of ``aftercare run --once`` with the defaults, sending ``due_now`` SMS to the
    fake, on a database holding ``pending`` pending rows."""
    from bench.bench_dispatch import _bulk_pending

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.db"
        from aftercare import db

        engine = db.make_engine(f"sqlite:///{path}")
        db.upgrade(engine)
        engine.dispose()
        _bulk_pending(path, pending, due_now)
        with fake_twilio(latency_ms) as fake:
            usage = run_once(f"sqlite:///{path}", fake, {})[0]
    return {"pending": pending, "peak_rss_mb": usage.peak_rss_mb, "output": usage.output}


MEASUREMENTS = {
    "aftercare": aftercare,
    "peer": peer,
    "bare_sdk": bare_sdk,
    "rate_limit": rate_limit,
    "idle_lag": idle_lag,
    "memory_pending": memory_pending,
}


def _in_subprocess(name: str, **kwargs: Any) -> dict[str, Any]:
    # `-c`, not `-m bench.bench_latency`: the peer's jobs name bench.bench_peer:send_sms, which
    # must be the module its configure_sms set up.
    code = (
        "import json, sys; from bench.bench_latency import MEASUREMENTS; "
        "print(json.dumps(MEASUREMENTS[sys.argv[1]](**json.loads(sys.argv[2]))))"
    )
    command = [sys.executable, "-c", code, name, json.dumps(kwargs)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{name} {kwargs} failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    _say(f"{name} {kwargs}: {_brief(result)}")
    return result


def _brief(result: dict[str, Any]) -> str:
    keys = ("per_second", "p50_ms", "p99_ms", "cpu_per_1000", "peak_rss_mb", "busiest_second")
    return " ".join(f"{k}={result[k]:.1f}" for k in keys if k in result)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the run and the table -----------------------------------------------------------------------


def concurrency() -> int:
    """How many sends aftercare keeps in flight by default (the bare SDK gets as many)."""
    return Settings().sms_concurrency


def run(quick: bool) -> dict[str, Any]:
    """Every measurement; aftercare and the bare SDK alternate ``repeats`` times (this machine's
    speed moves by a third from one minute to the next), the slow peer runs once."""
    scale, repeats = (5, 1) if quick else (1, 3)
    slow, fast, pg = 1_500 // scale, 3_000 // scale, 6_000 // scale
    threads = concurrency()
    r: dict[str, Any] = {"concurrency": threads, "repeats": repeats}
    for latency, count in ((150, slow), (1, fast)):
        r[f"peer_{latency}"] = _in_subprocess("peer", latency_ms=latency, count=count)
        r[f"bare_requests_{latency}"] = _in_subprocess(
            "bare_sdk", latency_ms=latency, count=count, threads=threads, client="requests"
        )
        ours, bare = [], []
        for _ in range(repeats):
            ours.append(_in_subprocess("aftercare", latency_ms=latency, count=count))
            bare.append(
                _in_subprocess(
                    "bare_sdk", latency_ms=latency, count=count, threads=threads, client="channel"
                )
            )
        r[f"aftercare_{latency}"], r[f"bare_channel_{latency}"] = _best(ours), _best(bare)
    pg_runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
    for _ in range(max(repeats - 1, 1)):
        for processes in (1, 2):
            pg_runs[processes].append(
                _in_subprocess(
                    "aftercare", latency_ms=150, count=pg, backend="postgresql", processes=processes
                )
            )
    r["pg_1"], r["pg_2"] = _best(pg_runs[1]), _best(pg_runs[2])
    r["rate"] = _in_subprocess("rate_limit", rate=10, count=50, latency_ms=1)
    r["idle"] = _in_subprocess("idle_lag", latency_ms=150, messages=100 // scale, spread=10.0)
    r["memory"] = _in_subprocess(
        "memory_pending", pending=1_000_000 // scale, due_now=2_000, latency_ms=150
    )
    return r


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest run, with every run's rate beside it."""
    best = max(runs, key=lambda x: float(x["per_second"]))
    return {**best, "all_per_second": [x["per_second"] for x in runs]}


def table(r: dict[str, Any]) -> str:
    lines = [
        f"Measured {machine()}; the machine was shared with other work during the run. "
        f"aftercare with its defaults ({r['concurrency']} sends in flight). aftercare and the "
        f"bare SDK through the channel's client: best of {r['repeats']} alternating runs (all "
        "runs in the last column); the others, one run.",
        "",
        "| latency | side | messages | msg/s | ÷ peer | send lag p50 / p99 | CPU s per 1,000 "
        "| peak RSS | every run, msg/s |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for latency in (150, 1):
        ours, theirs = r[f"aftercare_{latency}"], r[f"peer_{latency}"]
        bare, usual = r[f"bare_channel_{latency}"], r[f"bare_requests_{latency}"]
        for label, x in (
            ("aftercare `run --once`, SQLite, defaults", ours),
            (f"APScheduler 3, a job per reminder, {theirs['threads']} threads", theirs),
            (f"bare SDK, the channel's client, {bare['threads']} threads, no database", bare),
            (f"bare SDK, its usual requests client, {usual['threads']} threads", usual),
        ):
            lines.append(
                f"| {latency} ms | {label} | {x['messages']:,} | **{x['per_second']:,.0f}** "
                f"| {x['per_second'] / theirs['per_second']:.2f}× "
                f"| {x['p50_ms']:,.0f} / {x['p99_ms']:,.0f} ms | {x['cpu_per_1000']:.2f} "
                f"| {x['peak_rss_mb']:.0f} MB | {_rates(x)} |"
            )
    one, two = r["pg_1"], r["pg_2"]
    rate, idle, memory = r["rate"], r["idle"], r["memory"]
    lines += [
        "",
        "| measurement | result |",
        "| --- | --- |",
        f"| PostgreSQL, 150 ms, {one['messages']:,} SMS: 1 daemon (best; every run: "
        f"{_rates(one)}) | {one['per_second']:,.0f} msg/s |",
        f"| … 2 daemons at once (best; every run: {_rates(two)}) | {two['per_second']:,.0f} "
        f"msg/s = **{two['per_second'] / one['per_second']:.2f}×** one; duplicates: "
        f"{two['duplicates']} |",
        f"| `AFTERCARE_SMS_RATE={rate['rate']}`, {rate['messages']} SMS: most requests at the fake "
        f"in any 1 s | **{rate['busiest_second']}** (over {rate['seconds']:.1f} s) |",
        f"| idle daemon, 150 ms, {idle['messages']} messages due at random moments: lag due → "
        f"Twilio, p50 / p99 / max | {idle['p50_ms']:.0f} / **{idle['p99_ms']:.0f}** / "
        f"{idle['max_ms']:.0f} ms |",
        f"| `run --once` with {memory['pending']:,} pending rows, 150 ms ({memory['output']}): "
        f"peak RSS | **{memory['peak_rss_mb']:.1f} MB** |",
    ]
    return "\n".join(lines)


def _rates(x: dict[str, Any]) -> str:
    return " / ".join(f"{v:,.0f}" for v in x.get("all_per_second", [x["per_second"]]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the sizes; print only")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args()
    section = table(run(args.quick))
    print(section)
    if not (args.quick or args.no_readme):
        write_section("latency", section)


if __name__ == "__main__":
    main()
