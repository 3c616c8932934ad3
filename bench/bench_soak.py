"""Soak benchmark: the real daemon and web server together, for minutes, under a steady stream.

Run: .venv-test/bin/python -m bench.bench_soak [--minutes N] [--quick] [--no-readme]

``aftercare run`` and ``aftercare serve`` run as subprocesses on one SQLite file (WAL), the
daemon texting through the real twilio SDK to the fake Twilio API (``tests/fakes/twilio.py``,
in this process, loopback only). This process is the outside world, at a steady pace:

- staff enroll patients (``aftercare.enrollment``, a few a second) on a timeline of three SMS
  due seconds after discharge (written to a temporary ``AFTERCARE_SCHEDULES_DIR``);
- Twilio posts signed status callbacks for every text it took, a second after taking it: sent
  then delivered, or undelivered/failed with a code, the final one twice for some;
- patients reply (signed inbound webhooks): pain scores, questions, a warning sign, HELP, STOP,
  START, a plain-words revocation.

Every few seconds the RSS and CPU of both processes (``/proc``) and the due-but-unsent backlog
(``/metrics``) are sampled. The load phase is cut into windows; the first window after warm-up
(once every step of the timeline is coming due) is compared with the last one: memory, backlog,
send lag (due time -> the fake taking the text) and webhook latency must not grow. After the
load stops, everything left is sent and answered, both processes stop, and the end state is
checked: every text reached the fake exactly once (or was suppressed by a STOP), every callback's
final state is in the database, every reply is stored, no answer other than 200, no error in the
logs. Any problem makes the exit code 1.

The harness (:func:`soak`, :class:`Profile`, :class:`Result`) is shared with tests/test_soak.py,
which runs a shorter profile in CI. The full run rewrites the ``soak-results`` section of
bench/README.md (not with ``--quick`` or ``--no-readme``).
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import random
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from itertools import takewhile
from pathlib import Path

import requests
from sqlalchemy import func, select

from aftercare import db
from aftercare.app import App
from aftercare.clock import SystemClock
from aftercare.config import Settings
from aftercare.db import transaction
from aftercare.enrollment import parse_request
from aftercare.models import Message, Reply
from aftercare.statuses import MessageStatus
from aftercare.store.enrollments import enroll_many
from bench.common import machine, write_section
from tests.fakes.twilio import FakeMessage, FakeTwilio
from tests.fakes.twilio_callbacks import TwilioWebhooks

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_URL = "https://aftercare.example.test"
INBOUND_URL = f"{PUBLIC_URL}/webhooks/twilio/inbound"
CLINIC, CLINIC_PHONE = "Lakeside Spine", "+1 555 010 0142"
TIMELINE = "soak"
CALLBACK_DELAY = 1.0  # seconds from Twilio taking a text to its first status callback
# Twilio's final word on a text: (share, MessageStatus, ErrorCode). 30006 (a landline) also
# suppresses the number, so later texts to that patient must not go out.
OUTCOMES = ((0.85, "delivered", None), (0.10, "undelivered", "30003"), (0.05, "failed", "30006"))
DUPLICATE_SHARE = 0.2  # texts whose final callback arrives twice
# The replies, in turn (so even a short run sends each kind); see reply_text.
REPLY_CYCLE = (
    "pain", "question", "help", "stop", "pain", "warning", "start", "question", "revocation",
    "pain",
)  # fmt: skip
SENT = {
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
    MessageStatus.FAILED,
}
BACKLOG_SLACK = 5.0  # due-but-unsent messages the last window's mean may exceed the first's by
LATENCY_GROWTH = 2.0  # a p99 this many times the first window's (and 50 ms more) "grew"
AREA_CODES = ("202", "312", "415", "617", "713")  # 10,000 numbers each


@dataclass(frozen=True)
class Profile:
    """How long, how fast, and how much memory growth is tolerated."""

    load_seconds: float
    steps: tuple[int, ...]  # seconds after discharge of the timeline's texts
    window_seconds: float
    enrollments_per_second: float
    replies_per_second: float
    poll: float  # the daemon's --poll
    sample_every: float
    rss_growth_mb: float  # allowed growth from the first window to the last: this many MB ...
    rss_growth_share: float  # ... or this share of the first window's RSS, whichever is more

    @property
    def first_window(self) -> tuple[float, float]:
        """The first window in which every step of the timeline is coming due: the steady
        state. Before it the daemon sends fewer texts a second and warms its caches."""
        start = math.ceil(self.steps[-1] / self.window_seconds) * self.window_seconds
        return start, start + self.window_seconds

    @property
    def last_window(self) -> tuple[float, float]:
        return self.load_seconds - self.window_seconds, self.load_seconds

    def check(self) -> None:
        if self.first_window[1] > self.last_window[0]:
            raise ValueError("the load is too short: no window after warm-up before the last")


def full_profile(minutes: float) -> Profile:
    return Profile(
        load_seconds=minutes * 60,
        steps=(10, 30, 60),  # seen by the daemon a poll ahead, so it wakes at the due time
        window_seconds=30,
        enrollments_per_second=4,
        replies_per_second=1,
        poll=5,  # `aftercare run`'s default
        sample_every=2,
        rss_growth_mb=10,
        rss_growth_share=0.15,
    )


QUICK = Profile(
    load_seconds=30,
    steps=(5, 10, 15),
    window_seconds=5,
    enrollments_per_second=4,
    replies_per_second=1,
    poll=2,
    sample_every=1,
    rss_growth_mb=10,
    rss_growth_share=0.15,
)


# --- what the driver records -------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One webhook this process sent to the server."""

    kind: str  # "status" or "inbound"
    at: float  # wall time it was sent
    seconds: float
    answer: str  # the HTTP status, or the exception's name


@dataclass(frozen=True)
class Sample:
    at: float
    rss_mb: dict[str, float]  # by process: "daemon", "server"
    cpu_seconds: dict[str, float]
    backlog: float | None  # aftercare_backlog_messages; None when /metrics did not answer
    wal_mb: float  # the SQLite WAL file: it only shrinks when a checkpoint gets the whole file


@dataclass
class Journal:
    """Everything the driver's threads saw, appended as it happens (list.append is atomic)."""

    started: float = 0.0  # wall time the load began
    enrollments: list[tuple[float, int]] = field(default_factory=list)  # (when, patients)
    requests: list[Request] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    scrapes: Counter[str] = field(default_factory=Counter)  # /metrics answers
    final: dict[str, tuple[str, str | None]] = field(default_factory=dict)  # sid -> last callback
    replies: list[str] = field(default_factory=list)  # MessageSids of the replies sent
    crashes: list[str] = field(default_factory=list)  # driver threads that died, and why
    load_ended: float = 0.0
    settled: float | None = None  # when nothing was left to send or answer


class TimedFakeTwilio(FakeTwilio):
    """The fake Twilio API, noting when it took each text (its own dates are whole seconds)."""

    def __init__(self) -> None:
        super().__init__()
        self.arrivals: dict[str, float] = {}

    def accept(self, form: dict[str, str]) -> FakeMessage:
        message = super().accept(form)
        self.arrivals[message.sid] = time.time()
        return message


# --- set-up ------------------------------------------------------------------------------------


def timeline_yaml(steps: Sequence[int]) -> str:
    """SMS-only steps at +Ns; each text names the patient and its step, so no two are alike."""
    lines = [
        f"name: {TIMELINE}",
        "title: soak test",
        "version: 1",
        "languages: [en]",
        'defaults: {expires: "1h", channels: [sms]}',
        "steps:",
    ]
    for number, seconds in enumerate(steps, 1):
        text = f"{{{{ clinic_name }}}}: {{{{ first_name }}}}, soak text {number}. "
        lines += [
            f"  - id: text-{number}",
            f'    at: "+{seconds}s"',
            f'    sms: {{en: "{text}{{{{ clinic_phone }}}}. STOP to end"}}',
        ]
    return "\n".join(lines) + "\n"


def prepare(folder: Path, profile: Profile) -> tuple[Path, Path]:
    """A migrated SQLite file and a schedules folder with the soak timeline."""
    path = folder / "soak.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.upgrade(engine)
    engine.dispose()
    schedules = folder / "schedules"
    schedules.mkdir()
    (schedules / f"{TIMELINE}.yaml").write_text(timeline_yaml(profile.steps))
    return path, schedules


def environ(path: Path, schedules: Path, twilio: FakeTwilio) -> dict[str, str]:
    return (
        dict(os.environ)
        | twilio.environ()
        | {
            "AFTERCARE_DATABASE_URL": f"sqlite:///{path}",
            "AFTERCARE_SCHEDULES_DIR": str(schedules),
            "AFTERCARE_QUIET_HOURS": "off",
            # Texts are made due faster than one a day a number: the per-number cap is off.
            "AFTERCARE_SMS_DAILY_CAP": "0",
            "AFTERCARE_SMS_WEEKLY_CAP": "0",
            "AFTERCARE_CLINIC_NAME": CLINIC,
            "AFTERCARE_CLINIC_PHONE": CLINIC_PHONE,
            "AFTERCARE_PUBLIC_URL": PUBLIC_URL,
        }
    )


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m aftercare ARGS``, its output in ``log`` (a pipe nobody reads could fill up and
    stall it); SIGTERM at the end, then SIGKILL if it does not go."""
    with log.open("wb") as sink:
        child = subprocess.Popen(
            [sys.executable, "-m", "aftercare", *args],
            env=env,
            cwd=log.parent,
            stdout=sink,
            stderr=sink,
        )
    try:
        yield child
    finally:
        stop_process(child)


def stop_process(child: subprocess.Popen[bytes], seconds: float = 30) -> int:
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
    try:
        return child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return -signal.SIGKILL


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_healthy(port: int, children: Sequence[subprocess.Popen[bytes]]) -> None:
    """Until /healthz says 200: the server answers and the daemon has ticked."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        exits = [child.poll() for child in children]
        if any(code is not None for code in exits):
            raise RuntimeError(f"the daemon or the server exited at start: {exits}")
        try:
            if get(port, "/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the daemon and the server did not become healthy within 60 s")


def get(port: int, path: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


# --- /proc ---------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MB (10^6 bytes)."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 / 1e6 if match else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the outside world: staff, Twilio, patients (threads of this process) ----------------------


class World:
    """The driver: enrolls patients, posts Twilio's callbacks and the patients' replies, samples
    both processes, all into one Journal."""

    def __init__(
        self,
        profile: Profile,
        app: App,
        twilio: TimedFakeTwilio,
        port: int,
        pids: dict[str, int],
        wal: Path,
    ) -> None:
        self.profile, self.app, self.twilio, self.port, self.pids = profile, app, twilio, port, pids
        self.wal = wal
        self.journal = Journal()
        self.load_over = threading.Event()  # enrollments and replies stop
        self.done = threading.Event()  # callbacks and sampling stop
        self.patients = 0

    def run(self) -> Journal:
        journal = self.journal
        journal.started = time.time()
        workers = [
            threading.Thread(target=self._noting_crashes, args=(target,), daemon=True)
            for target in (self.enroll, self.callbacks, self.replies, self.sample)
        ]
        for worker in workers:
            worker.start()
        time.sleep(max(0.0, journal.started + self.profile.load_seconds - time.time()))
        self.load_over.set()
        journal.load_ended = time.time()
        journal.settled = self.wait_until_settled()
        self.done.set()
        for worker in workers:
            worker.join(timeout=60)
        return journal

    def _noting_crashes(self, work: Callable[[], None]) -> None:
        """A driver thread that dies would only show as a quieter load: note it as a problem."""
        try:
            work()
        except Exception as exc:
            self.journal.crashes.append(f"{work.__name__}: {type(exc).__name__}: {exc}")
            raise

    def wait_until_settled(self) -> float | None:
        """When every enrolled text has come due and been settled, and Twilio has posted every
        callback; None if that did not happen within a minute after the last one came due."""
        last_due = self.journal.load_ended + self.profile.steps[-1]
        deadline = last_due + 60
        while time.time() < deadline:
            if time.time() > last_due and self._nothing_left():
                return time.time()
            time.sleep(0.25)
        return None

    def _nothing_left(self) -> bool:
        with self.app.sessions() as session:
            open_rows = session.scalar(
                select(func.count()).where(
                    Message.status.in_([MessageStatus.PENDING, MessageStatus.SENDING])
                )
            )
        return open_rows == 0 and len(self.journal.final) == len(self.twilio.arrivals)

    def _pace(self, count: int, per_second: float, after: float = 0.0) -> bool:
        """Sleep until the ``count``-th event of a steady ``per_second`` stream starting
        ``after`` seconds into the load is due; False once the load is over."""
        wait = self.journal.started + after + count / per_second - time.time()
        return not self.load_over.wait(max(0.0, wait))

    # --- staff -------------------------------------------------------------------------------

    def enroll(self) -> None:
        """Enroll patients, discharged now, in batches twice a second (one transaction each, as
        a clinic's system would send them)."""
        rate, ticks = self.profile.enrollments_per_second, 0
        while self._pace(ticks, 2.0):
            due = int((time.time() - self.journal.started) * rate) - self.patients
            if due > 0:
                self._enroll(due)
            ticks += 1

    def _enroll(self, count: int) -> None:
        now = self.app.clock.now()
        batch = [
            parse_request(patient_fields(i, now), self.app.catalog, now)
            for i in range(self.patients, self.patients + count)
        ]
        with transaction(self.app.sessions) as session:
            enroll_many(session, batch, self.app.settings, now, "staff:soak")
        self.patients += count
        self.journal.enrollments.append((time.time(), count))

    # --- Twilio ------------------------------------------------------------------------------

    def callbacks(self) -> None:
        """For each text the fake took, CALLBACK_DELAY later: its status callbacks, in order."""
        hooks = TwilioWebhooks(f"http://127.0.0.1:{self.port}", self.twilio.auth_token)
        rng = random.Random(2)
        seen = 0
        try:
            while not self.done.is_set():
                ready = list(
                    takewhile(
                        lambda m: (
                            self.twilio.arrivals.get(m.sid, math.inf) + CALLBACK_DELAY
                            <= time.time()
                        ),
                        self.twilio.messages[seen:],
                    )
                )
                for message in ready:  # in the order Twilio took them
                    sequence = callback_sequence(rng)
                    for status, code in sequence:
                        self._post("status", partial(hooks.status, message, status, code))
                    self.journal.final[message.sid] = sequence[-1]
                seen += len(ready)
                if not ready:
                    time.sleep(0.05)
        finally:
            hooks.close()

    # --- patients ----------------------------------------------------------------------------

    def replies(self) -> None:
        hooks = TwilioWebhooks(f"http://127.0.0.1:{self.port}", self.twilio.auth_token)
        rng = random.Random(3)
        stopped: list[str] = []  # numbers that opted out, for START
        # Patients answer texts: the stream starts once the first texts have gone out.
        after, rate = self.profile.steps[0] + CALLBACK_DELAY, self.profile.replies_per_second
        try:
            while self._pace(len(self.journal.replies), rate, after):
                numbers = sorted({m.to for m in self.twilio.messages})  # texted at least once
                if not numbers:
                    time.sleep(0.1)
                    continue
                kind = REPLY_CYCLE[len(self.journal.replies) % len(REPLY_CYCLE)]
                number = stopped.pop(0) if kind == "start" and stopped else rng.choice(numbers)
                if kind in ("stop", "revocation"):
                    stopped.append(number)
                body, sid = reply_text(kind, rng), f"SM{uuid.uuid4().hex}"
                self._post("inbound", partial(hooks.inbound, INBOUND_URL, number, body, sid))
                self.journal.replies.append(sid)
        finally:
            hooks.close()

    def _post(self, kind: str, send: Callable[[], requests.Response]) -> None:
        at, started = time.time(), time.perf_counter()
        try:
            answer = str(send().status_code)
        except requests.RequestException as exc:
            answer = type(exc).__name__
        self.journal.requests.append(Request(kind, at, time.perf_counter() - started, answer))

    # --- sampling ----------------------------------------------------------------------------

    def sample(self) -> None:
        while not self.done.wait(self.profile.sample_every):
            try:
                status, body = get(self.port, "/metrics")
            except OSError as exc:
                status, body = 0, type(exc).__name__
            self.journal.scrapes[str(status or body)] += 1
            match = re.search(r"^aftercare_backlog_messages (\S+)$", body, re.MULTILINE)
            self.journal.samples.append(
                Sample(
                    at=time.time(),
                    rss_mb={name: rss_mb(pid) for name, pid in self.pids.items()},
                    cpu_seconds={name: cpu_seconds(pid) for name, pid in self.pids.items()},
                    backlog=float(match.group(1)) if status == 200 and match else None,
                    wal_mb=self.wal.stat().st_size / 1e6 if self.wal.exists() else 0.0,
                )
            )


def patient_fields(i: int, now: datetime) -> dict[str, str]:
    """Patient ``i``, discharged now: a number and a name of its own (so its texts are unique)."""
    if i >= 10_000 * len(AREA_CODES):
        raise ValueError("more patients than phone numbers: lower the rate or the minutes")
    return {
        "first_name": f"Soak{i}",
        "phone": f"+1{AREA_CODES[i // 10_000]}555{i % 10_000:04d}",
        "timezone": "America/Chicago",
        "procedure": TIMELINE,
        "discharged_at": now.isoformat(),
        "channels": "sms",
        "external_id": f"SOAK-{i}",
    }


def callback_sequence(rng: random.Random) -> list[tuple[str, str | None]]:
    """One text's callbacks in Twilio's order; the last one is its final state."""
    shares = [share for share, _, _ in OUTCOMES]
    _, status, code = rng.choices(OUTCOMES, weights=shares)[0]
    sequence: list[tuple[str, str | None]] = [("sent", None), (status, code)]
    if status == "failed":
        sequence = sequence[1:]  # a landline fails without ever being sent
    if rng.random() < DUPLICATE_SHARE:
        sequence.append(sequence[-1])
    return sequence


def reply_text(kind: str, rng: random.Random) -> str:
    match kind:
        case "pain":
            return rng.choice(("{}", "pain {}", "{}/10", "dolor {}")).format(rng.randint(0, 10))
        case "question":
            return rng.choice(("When can I take a bath?", "¿Puedo manejar mañana?"))
        case "warning":
            return "I have a fever and the site is red"  # urgent: a warning sign
        case "revocation":
            return "please stop texting me"
        case keyword:
            return {"help": "HELP", "stop": "STOP", "start": "START"}[keyword]


# --- the run -------------------------------------------------------------------------------------


def soak(profile: Profile, folder: Path) -> Result:
    """Start the daemon and the server on a fresh database in ``folder``, drive them for the
    profile's load, let them settle, stop them, and check what happened."""
    profile.check()
    path, schedules = prepare(folder, profile)
    settings = Settings(
        database_url=f"sqlite:///{path}",
        schedules_dir=schedules,
        quiet_hours=None,
        sms_daily_cap=0,  # as for the daemon (see environ)
        sms_weekly_cap=0,
        clinic_name=CLINIC,
        clinic_phone=CLINIC_PHONE,
        public_url=PUBLIC_URL,
    )
    app = App(settings, SystemClock(), actor="staff:soak")
    port = free_port()
    with ExitStack() as stack:
        twilio = TimedFakeTwilio()
        stack.enter_context(twilio)
        env = environ(path, schedules, twilio)
        daemon_log, server_log = folder / "daemon.log", folder / "server.log"
        run = ["run", "--poll", str(profile.poll)]
        daemon = stack.enter_context(process(run, env, daemon_log))
        server = stack.enter_context(process(["serve", "--port", str(port)], env, server_log))
        wait_until_healthy(port, (daemon, server))
        pids = {"daemon": daemon.pid, "server": server.pid}
        world = World(profile, app, twilio, port, pids, path.with_name(f"{path.name}-wal"))
        journal = world.run()
        stopped_at = time.perf_counter()
        daemon_exit = stop_process(daemon)
        stop_seconds = time.perf_counter() - stopped_at
        stop_process(server)
        end = check(app, twilio, journal)
    app.close()
    logs = {"daemon": daemon_log.read_text(), "server": server_log.read_text()}
    return Result(
        profile=profile,
        journal=journal,
        first=window(journal, twilio, end.lags, profile.first_window),
        last=window(journal, twilio, end.lags, profile.last_window),
        end=end,
        daemon_exit=daemon_exit,
        daemon_stop_seconds=stop_seconds,
        log_errors={name: error_lines(text) for name, text in logs.items()},
    )


# --- the checks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndState:
    """The database and the fake after the run."""

    patients: int
    messages: int  # rows planned
    sent: int  # rows sent, with a provider id the fake has
    suppressed: int  # rows a STOP (or a landline) kept back, never at the fake
    lost: dict[str, int]  # rows in any other state, by status
    duplicates: int  # texts the fake took more than once
    unknown: int  # texts at the fake whose SID no row has
    wrong_final: int  # texts whose status or code is not their last callback's
    replies_stored: int
    lags: dict[str, float]  # SID -> seconds from due time to the fake taking it


def check(app: App, twilio: TimedFakeTwilio, journal: Journal) -> EndState:
    with app.sessions() as session:
        rows = session.execute(
            select(
                Message.status,
                Message.provider_id,
                Message.error_code,
                Message.due_at,
                Message.enrollment_id,
            )
        ).all()
        stored = set(session.scalars(select(Reply.provider_id)))
    taken = twilio.messages
    by_sid = {m.sid: m for m in taken}
    copies = Counter((m.to, m.body) for m in taken)
    recorded = {row.provider_id for row in rows if row.provider_id}
    lost: Counter[str] = Counter()
    lags: dict[str, float] = {}
    wrong_final = sent = suppressed = 0
    for row in rows:
        if row.status in SENT and row.provider_id in by_sid:
            sent += 1
            lags[row.provider_id] = twilio.arrivals[row.provider_id] - row.due_at.timestamp()
            final = journal.final.get(row.provider_id)
            if final is not None and final != (row.status, row.error_code):
                wrong_final += 1
        elif row.status == MessageStatus.SUPPRESSED and row.provider_id is None:
            suppressed += 1
        else:
            lost[str(row.status)] += 1
    return EndState(
        patients=len({row.enrollment_id for row in rows}),
        messages=len(rows),
        sent=sent,
        suppressed=suppressed,
        lost=dict(lost),
        duplicates=sum(n - 1 for n in copies.values()),
        unknown=sum(1 for sid in by_sid if sid not in recorded),
        wrong_final=wrong_final,
        replies_stored=len(stored & set(journal.replies)),
        lags=lags,
    )


def error_lines(log: str) -> int:
    """Lines of a text-format log at ERROR or CRITICAL, and tracebacks."""
    pattern = re.compile(r" (?:ERROR|CRITICAL) |^Traceback ", re.MULTILINE)
    return len(pattern.findall(log))


# --- windows and the verdict --------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    start: float  # seconds after the load began
    end: float
    rss_mb: dict[str, float]  # median of the window's samples, by process
    cores: dict[str, float]  # CPU seconds per second over the window, by process
    backlog_mean: float
    backlog_max: float
    wal_mb: float  # the largest the WAL file was in the window
    lag_ms: tuple[float, float]  # p50, p99 of the texts due in the window
    hook_ms: tuple[float, float]  # p50, p99 of the webhooks sent in the window
    per_second: dict[str, float]  # enrollments, texts, callbacks, replies


def window(
    journal: Journal, twilio: TimedFakeTwilio, lags: dict[str, float], span: tuple[float, float]
) -> Window:
    start, end = (journal.started + s for s in span)

    def inside(at: float) -> bool:
        return start <= at < end

    samples = [s for s in journal.samples if inside(s.at)]
    if len(samples) < 2:
        raise RuntimeError(f"fewer than two samples between {span[0]:g} and {span[1]:g} s")
    names = samples[0].rss_mb
    backlog = [s.backlog for s in samples if s.backlog is not None] or [math.nan]
    due = [lag for sid, lag in lags.items() if inside(twilio.arrivals[sid] - lag)]
    hooks = [r for r in journal.requests if inside(r.at)]
    seconds = end - start
    elapsed = samples[-1].at - samples[0].at
    return Window(
        start=span[0],
        end=span[1],
        rss_mb={n: statistics.median(s.rss_mb[n] for s in samples) for n in names},
        cores={
            n: (samples[-1].cpu_seconds[n] - samples[0].cpu_seconds[n]) / elapsed for n in names
        },
        backlog_mean=statistics.fmean(backlog),
        backlog_max=max(backlog),
        wal_mb=max(s.wal_mb for s in samples),
        lag_ms=(percentile(due, 0.5) * 1000, percentile(due, 0.99) * 1000),
        hook_ms=(
            percentile([r.seconds for r in hooks], 0.5) * 1000,
            percentile([r.seconds for r in hooks], 0.99) * 1000,
        ),
        per_second={
            "enrollments": sum(n for at, n in journal.enrollments if inside(at)) / seconds,
            "texts": sum(1 for at in twilio.arrivals.values() if inside(at)) / seconds,
            "callbacks": sum(1 for r in hooks if r.kind == "status") / seconds,
            "replies": sum(1 for r in hooks if r.kind == "inbound") / seconds,
        },
    )


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@dataclass(frozen=True)
class Result:
    profile: Profile
    journal: Journal
    first: Window
    last: Window
    end: EndState
    daemon_exit: int
    daemon_stop_seconds: float
    log_errors: dict[str, int]

    def rss_limit(self, name: str) -> float:
        """The most the last window's RSS may be."""
        first = self.first.rss_mb[name]
        profile = self.profile
        return first + max(profile.rss_growth_mb, first * profile.rss_growth_share)

    def answers(self) -> Counter[str]:
        return Counter(r.answer for r in self.journal.requests)

    def latency_grew(self) -> bool:
        """Informational: a shared machine's slow minute looks the same."""
        first, last = self.first.hook_ms[1], self.last.hook_ms[1]
        return last > first * LATENCY_GROWTH and last > first + 50

    def problems(self) -> list[str]:
        """Each broken invariant in one line; empty when the soak passed."""
        found = []
        for name in self.first.rss_mb:
            if self.last.rss_mb[name] > self.rss_limit(name):
                found.append(
                    f"{name} RSS grew: {self.first.rss_mb[name]:.1f} -> "
                    f"{self.last.rss_mb[name]:.1f} MB (limit {self.rss_limit(name):.1f})"
                )
        if not self.last.backlog_mean <= self.first.backlog_mean + BACKLOG_SLACK:
            found.append(
                f"backlog grew: mean {self.first.backlog_mean:.1f} -> {self.last.backlog_mean:.1f}"
            )
        end, journal = self.end, self.journal
        if journal.crashes:
            found.append(f"driver threads died: {journal.crashes}")
        if journal.settled is None:
            found.append("did not settle: texts still due or callbacks unsent a minute after")
        if end.lost:
            found.append(f"texts neither sent nor suppressed: {end.lost}")
        if end.duplicates or end.unknown:
            found.append(f"texts at the fake twice: {end.duplicates}, unknown SIDs: {end.unknown}")
        if end.wrong_final:
            found.append(f"texts whose final callback is not in the database: {end.wrong_final}")
        if end.replies_stored != len(journal.replies):
            missing = len(journal.replies) - end.replies_stored
            found.append(f"replies not stored: {missing} of {len(journal.replies)}")
        if end.sent + end.suppressed != end.messages or not end.sent:
            found.append(f"{end.sent} sent + {end.suppressed} suppressed of {end.messages} rows")
        other = {a: n for a, n in self.answers().items() if a != "200"}
        if other:
            found.append(f"webhook answers other than 200: {other}")
        scrapes = {a: n for a, n in journal.scrapes.items() if a != "200"}
        if scrapes:
            found.append(f"/metrics answers other than 200: {scrapes}")
        if any(self.log_errors.values()):
            found.append(f"error lines in the logs: {self.log_errors}")
        if self.daemon_exit != 0:
            found.append(f"the daemon exited with {self.daemon_exit} on SIGTERM")
        return found


# --- the README section ------------------------------------------------------------------------


def table(result: Result) -> str:
    first, last, end, journal = result.first, result.last, result.end, result.journal
    profile = result.profile

    def span(w: Window) -> str:
        return f"{w.start:g}–{w.end:g} s"

    def row(label: str, a: str, b: str, limit: str = "", verdict: str = "") -> str:
        return f"| {label} | {a} | {b} | {limit} | {verdict} |"

    lines = [
        f"Measured {machine()}, SQLite {sqlite3.sqlite_version}. {profile.load_seconds / 60:g} "
        f"minutes of load, then {_settle_text(result)}; windows of "
        f"{profile.window_seconds:g} s, the first one after warm-up against the last one.",
        "",
        f"| measurement | after warm-up ({span(first)}) | last ({span(last)}) | limit | |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, command in (("daemon", "aftercare run"), ("server", "aftercare serve")):
        grew = last.rss_mb[name] > result.rss_limit(name)
        lines.append(
            row(
                f"RSS of `{command}` (median)",
                f"{first.rss_mb[name]:.1f} MB",
                f"{last.rss_mb[name]:.1f} MB",
                f"≤ {result.rss_limit(name):.1f} MB (+{profile.rss_growth_mb:g} MB or "
                f"+{profile.rss_growth_share:.0%})",
                "**grew**" if grew else "flat",
            )
        )
    for name, command in (("daemon", "aftercare run"), ("server", "aftercare serve")):
        lines.append(
            row(f"CPU of `{command}`, cores", f"{first.cores[name]:.2f}", f"{last.cores[name]:.2f}")
        )
    backlog_grew = last.backlog_mean > first.backlog_mean + BACKLOG_SLACK
    lines += [
        row(
            "backlog, due and unsent (`/metrics`): mean / max",
            f"{first.backlog_mean:.1f} / {first.backlog_max:g}",
            f"{last.backlog_mean:.1f} / {last.backlog_max:g}",
            f"mean ≤ first + {BACKLOG_SLACK:g}",
            "**grew**" if backlog_grew else "flat",
        ),
        row("SQLite WAL file, largest", f"{first.wal_mb:.1f} MB", f"{last.wal_mb:.1f} MB"),
        row(
            "send lag, due → the fake has it: p50 / p99",
            _pair(first.lag_ms),
            _pair(last.lag_ms),
        ),
        row(
            "webhook latency (callbacks and replies): p50 / p99",
            _pair(first.hook_ms),
            _pair(last.hook_ms),
            f"p99 not ×{LATENCY_GROWTH:g} (reported only)",
            "**grew**" if result.latency_grew() else "flat",
        ),
    ]
    for key, label in (
        ("enrollments", "patients enrolled"),
        ("texts", "texts sent"),
        ("callbacks", "status callbacks"),
        ("replies", "replies"),
    ):
        lines.append(
            row(
                f"{label} per second", f"{first.per_second[key]:.1f}", f"{last.per_second[key]:.1f}"
            )
        )
    lines += [
        "",
        "RSS by window, median MB (the whole load, warm-up included):",
        "",
        *(f"- `{command}`: {', '.join(f'{mb:.1f}' for mb in rss_series(result, name))}"
          for name, command in (("daemon", "aftercare run"), ("server", "aftercare serve"))),
    ]  # fmt: skip
    lags = sorted(end.lags.values())
    answers = result.answers()
    other = sum(n for a, n in answers.items() if a != "200")
    lost = sum(end.lost.values())
    lines += [
        "",
        "| whole run | |",
        "| --- | --- |",
        f"| patients enrolled | {end.patients:,} |",
        f"| texts planned and due | {end.messages:,}: {end.sent:,} reached the fake, "
        f"{end.suppressed:,} suppressed (STOP, a landline), **{lost}** neither |",
        f"| texts at the fake twice / with a SID the database lacks | **{end.duplicates}** / "
        f"**{end.unknown}** |",
        f"| send lag over the run: p50 / p99 / max | {percentile(lags, 0.5) * 1000:.0f} / "
        f"{percentile(lags, 0.99) * 1000:.0f} / {lags[-1] * 1000 if lags else math.nan:,.0f} ms |",
        f"| status callbacks posted | {answers_of(journal, 'status'):,} for "
        f"{len(journal.final):,} texts; final state wrong in the database: **{end.wrong_final}** |",
        f"| replies posted / stored | {len(journal.replies):,} / {end.replies_stored:,} |",
        f"| webhook answers other than 200 | **{other}** |",
        f"| error lines in the logs (daemon, server) | {result.log_errors['daemon']}, "
        f"{result.log_errors['server']} |",
        f"| daemon on SIGTERM | exit {result.daemon_exit} after "
        f"{result.daemon_stop_seconds:.1f} s |",
    ]
    problems = result.problems()
    lines += ["", "**Passed**: no problem found." if not problems else "**Problems**:"]
    lines += [f"- {problem}" for problem in problems]
    return "\n".join(lines)


def rss_series(result: Result, name: str) -> list[float]:
    """The median RSS of ``name`` in each window of the load, to see a trend or a plateau."""
    journal, width = result.journal, result.profile.window_seconds
    windows = int(result.profile.load_seconds // width)
    series = []
    for k in range(windows):
        start = journal.started + k * width
        inside = [s.rss_mb[name] for s in journal.samples if start <= s.at < start + width]
        series.append(statistics.median(inside) if inside else math.nan)
    return series


def _settle_text(result: Result) -> str:
    journal = result.journal
    if journal.settled is None:
        return "**nothing settled within a minute**"
    after = journal.settled - (journal.load_ended + result.profile.steps[-1])
    return f"everything settled {max(after, 0):.1f} s after the last text came due"


def _pair(ms: tuple[float, float]) -> str:
    return f"{ms[0]:,.0f} / {ms[1]:,.0f} ms"


def answers_of(journal: Journal, kind: str) -> int:
    return sum(1 for r in journal.requests if r.kind == kind)


# --- the command -------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="of load (default 5)")
    parser.add_argument("--quick", action="store_true", help="30 s of load, print only")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    parser.add_argument("--keep", action="store_true", help="keep the folder with the logs")
    args = parser.parse_args()
    profile = QUICK if args.quick else full_profile(args.minutes)
    folder = Path(tempfile.mkdtemp(prefix="aftercare-soak-"))
    result = soak(profile, folder)
    section = table(result)
    print(section)
    if args.keep:
        print(f"\nlogs and database: {folder}")
    else:
        import shutil

        shutil.rmtree(folder)
    if not (args.quick or args.no_readme):
        write_section("soak", section)
    if result.problems():
        sys.exit(1)


if __name__ == "__main__":
    main()
