"""Peer benchmark: the same patients' reminders scheduled and sent by aftercare and by the usual
way (APScheduler 3 with its SQLAlchemy job store on SQLite, one job per reminder).

Run: .venv/bin/python -m bench.bench_peer [--quick] [--no-readme]

Both sides read the same CSV (bench/generate.py), validate it with aftercare's parser, plan it
with aftercare's planner and send through the same real twilio SDK and transport to the same fake
Twilio API (tests/fakes/twilio.py, in its own process), so what differs is how each stores and
runs the reminders. Each measurement runs in a fresh subprocess (its own ru_maxrss); every run is
checked (the same reminders on both sides, each text at the fake exactly once) or the benchmark
stops. The results section in bench/README.md is rewritten between its markers.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import requests
from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
)
from apscheduler.executors.pool import ThreadPoolExecutor as JobThreadPool
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from sqlalchemy import Engine, create_engine, event, select, update
from twilio.rest import Client

from aftercare import db
from aftercare.channels.sms import SmsChannel
from aftercare.channels.twilio_http import TwilioTransport
from aftercare.clock import ManualClock
from aftercare.config import Settings
from aftercare.dispatch import Dispatcher, DispatchOptions
from aftercare.enrollment import EnrollmentRequest, parse_request
from aftercare.importer import import_csv
from aftercare.models import Message
from aftercare.planner import plan
from aftercare.render import Clinic, Recipient, render_message
from aftercare.schedules.load import Catalog
from bench.common import copy_of, machine, migrated_template, write_section
from bench.generate import NOW, write_file

ROOT = Path(__file__).resolve().parents[1]
SENDERS = 8  # aftercare's sending threads and APScheduler's pool, as in bench_dispatch
SMS_PER_PATIENT = 9  # SMS occurrences in each built-in timeline (and 9 emails)
# The peer's job function, by textual reference: what APScheduler's docs advise for persistent
# job stores (the pickled job names the function, which must import the same way after a restart).
SEND_SMS = "bench.bench_peer:send_sms"
SEND_EMAIL = "bench.bench_peer:send_email"


@dataclass(frozen=True)
class FakeApi:
    """Where the fake Twilio API answers, and the credentials it accepts."""

    url: str
    account_sid: str
    auth_token: str
    from_number: str


# --- the usual way: APScheduler 3, one job per reminder ---------------------------------------


@dataclass(frozen=True)
class Reminder:
    """One planned message as the peer schedules it: rendered when scheduled, as a job's
    arguments (a job store holds arguments, not templates)."""

    job_id: str
    channel: str
    to: str
    subject: str | None
    text: str
    due_at: datetime
    grace: timedelta  # the step's expiry: never sent later than due + this


def reminders(
    csv_path: Path, catalog: Catalog, settings: Settings, channels: tuple[str, ...]
) -> Iterator[Reminder]:
    """Every reminder of every patient in the file, patient by patient, in each plan's order
    (the order aftercare's import writes its message rows in)."""
    clinic = Clinic(settings.clinic_name, settings.clinic_phone)
    with csv_path.open(encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            request = parse_request(row, catalog, NOW)
            yield from _patient_reminders(request, settings, clinic, channels)


def _patient_reminders(
    request: EnrollmentRequest, settings: Settings, clinic: Clinic, channels: tuple[str, ...]
) -> Iterator[Reminder]:
    timeline, zone, discharged = request.timeline, request.timezone, request.discharged_at
    recipient = Recipient(request.first_name, zone, request.language, discharged)
    for message in plan(timeline, zone, discharged, request.channels, settings.quiet_hours):
        if message.channel not in channels:
            continue
        step = timeline.step_by_id[message.step]
        rendered = render_message(
            timeline, step, message.channel, recipient, clinic, message.due_at
        )
        yield Reminder(
            job_id=f"{request.external_id}:{message.step}:{message.occurrence}:{message.channel}",
            channel=message.channel,
            to=request.phone if message.channel == "sms" else str(request.email),
            subject=rendered.subject,
            text=rendered.text,
            due_at=message.due_at,
            grace=message.expires_at - message.due_at,
        )


def peer_scheduler(store: SQLAlchemyJobStore, senders: int = SENDERS) -> BackgroundScheduler:
    """Started paused: a scheduler that is not running only queues added jobs in memory until
    ``start``; a paused one writes each job to the store at once and runs none."""
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": JobThreadPool(senders)},
        timezone=UTC,
    )
    scheduler.start(paused=True)
    return scheduler


def default_store(path: Path) -> SQLAlchemyJobStore:
    """The job store as its documentation sets it up: a URL, nothing else."""
    return SQLAlchemyJobStore(url=f"sqlite:///{path}")


def tuned_store(path: Path) -> SQLAlchemyJobStore:
    """The same store on an engine with aftercare's SQLite settings (WAL, synchronous=NORMAL),
    so the comparison can tell SQLite's journal apart from the job store's design."""
    engine: Engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return SQLAlchemyJobStore(engine=engine)


def add_job(scheduler: BackgroundScheduler, reminder: Reminder, run_at: datetime) -> None:
    args: tuple[str, ...]
    if reminder.channel == "sms":
        func, args = SEND_SMS, (reminder.to, reminder.text)
    else:
        func, args = SEND_EMAIL, (reminder.to, reminder.subject or "", reminder.text)
    scheduler.add_job(
        func,
        DateTrigger(run_date=run_at),
        args=args,
        id=reminder.job_id,  # re-enrolling the same patient replaces, never duplicates
        replace_existing=True,
        # Late is fine up to the step's expiry, as aftercare's rule; later, the job is skipped.
        misfire_grace_time=int(reminder.grace.total_seconds()),
    )


_sms_settings: dict[str, str] = {}  # set by configure_sms; a deployment would read os.environ
_sms_local = threading.local()  # one SDK client (and keep-alive connection) per worker thread
_sms_transports: list[TwilioTransport] = []
_sms_lock = threading.Lock()


def configure_sms(fake: FakeApi) -> None:
    _sms_settings.update(
        url=fake.url, sid=fake.account_sid, token=fake.auth_token, sender=fake.from_number
    )


def send_sms(to: str, body: str) -> str:
    """The peer's job: one text through the twilio SDK. The transport is aftercare's (the
    same URL rewrite, keep-alive session and silenced SDK logging), so HTTP costs the same on
    both sides."""
    client = getattr(_sms_local, "client", None)
    if client is None:
        transport = TwilioTransport(_sms_settings["url"], 30.0)
        environment = {"TWILIO_ACCOUNT_SID": _sms_settings["sid"]}
        client = Client(
            _sms_settings["sid"],
            _sms_settings["token"],
            http_client=transport,
            environment=environment,
        )
        _sms_local.client = client
        with _sms_lock:
            _sms_transports.append(transport)
    record = client.messages.create(to=to, from_=_sms_settings["sender"], body=body)
    return str(record.sid)


def send_email(to: str, subject: str, body: str) -> None:
    """The peer's email job (scheduled here, never run: the comparison sends SMS)."""
    import smtplib
    from email.message import EmailMessage

    message = EmailMessage()
    message["To"], message["Subject"] = to, subject
    message.set_content(body)
    with smtplib.SMTP("localhost") as smtp:
        smtp.send_message(message)


def close_sms() -> None:
    with _sms_lock:
        transports = list(_sms_transports)
        _sms_transports.clear()
    for transport in transports:
        transport.close()


class Outcomes:
    """What the scheduler reports of each job run (on its worker threads); ``done`` is set when
    ``expected`` runs have ended one way or another."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.sids: list[str] = []
        self.job_ids: list[str] = []
        self.errors = 0
        self.missed = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def record(self, outcome: JobExecutionEvent) -> None:
        with self._lock:
            self.job_ids.append(outcome.job_id)
            if outcome.code == EVENT_JOB_EXECUTED:
                self.sids.append(outcome.retval)
            elif outcome.code == EVENT_JOB_ERROR:
                self.errors += 1
            else:
                self.missed += 1
            if len(self.job_ids) >= self.expected:
                self.done.set()


# --- the measurements (each in its own process in the benchmark; called directly by the test) --


def schedule_aftercare(csv_path: Path, db_path: Path) -> dict[str, Any]:
    """``import_csv`` (the code behind ``aftercare import``) into a migrated SQLite file."""
    engine = db.make_engine(f"sqlite:///{db_path}")
    factory = db.session_factory(engine)
    catalog, settings = Catalog.default(), Settings()
    baseline = _peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    report = import_csv(csv_path, factory, catalog, settings, NOW, "bench")
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    with factory() as session:
        planned = [
            (c, _epoch(at)) for c, at in session.execute(select(Message.channel, Message.due_at))
        ]
    engine.dispose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "patients": report.enrolled,
        "bad": len(report.bad),
        "reminders": report.messages,
        "stored": len(planned),
        "due_digest": _digest(planned),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
    }


def schedule_peer(csv_path: Path, store_path: Path, tuned: bool = False) -> dict[str, Any]:
    """Read, validate, plan and render every reminder, and ``add_job`` each into the store."""
    catalog, settings = Catalog.default(), Settings()
    store = tuned_store(store_path) if tuned else default_store(store_path)
    scheduler = peer_scheduler(store)
    baseline = _peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    in_add_job, count, patients = 0.0, 0, set()
    for reminder in reminders(csv_path, catalog, settings, ("sms", "email")):
        before = time.perf_counter()
        add_job(scheduler, reminder, reminder.due_at)
        in_add_job += time.perf_counter() - before
        count += 1
        patients.add(reminder.job_id.split(":", 1)[0])
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    planned = [(job_id.rsplit(":", 1)[1], at) for job_id, at in _store_rows(store_path)]
    # Shutting down a paused scheduler runs one pass over the due jobs (3.11 skips the pass only
    # when paused, not when stopped), and the benchmark's reminders are planned around its fixed
    # clock, so by the wall clock many are due: that pass would hand them to the stopped executor.
    scheduler.remove_all_jobs()
    scheduler.shutdown()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "add_job_seconds": in_add_job,
        "patients": len(patients),
        "bad": 0,  # parse_request raises on a bad row: the generated file has none
        "reminders": count,
        "stored": len(planned),
        "due_digest": _digest(planned),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": _peak_rss_mb(),
    }


def dispatch_aftercare(
    csv_path: Path, db_path: Path, fake: FakeApi, count: int, senders: int = SENDERS
) -> dict[str, Any]:
    """The first ``count`` SMS rows of the imported patients made due now (the rest cancelled),
    sent by ``Dispatcher.dispatch_due`` with the real SMS channel and recorded."""
    settings = _twilio_settings(fake)
    engine = db.make_engine(f"sqlite:///{db_path}")
    factory = db.session_factory(engine)
    catalog = Catalog.default()
    import_csv(csv_path, factory, catalog, settings, NOW, "bench")
    _only_first_sms_due(factory, count)
    dispatcher = Dispatcher(
        factory,
        {"sms": SmsChannel(settings)},
        catalog,
        settings,
        ManualClock(NOW),
        "bench",
        DispatchOptions(batch_size=200, senders=senders),
    )
    baseline = _peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    tally = dispatcher.dispatch_due()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    peak = _peak_rss_mb()
    dispatcher.close()
    with factory() as session:
        sids = list(session.scalars(select(Message.provider_id).where(Message.status == "sent")))
    engine.dispose()
    return {
        "messages": count,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "sent": tally["sent"],
        "problems": sum(n for status, n in tally.items() if status != "sent"),
        **_at_fake(fake, [str(s) for s in sids]),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
    }


def dispatch_peer(
    csv_path: Path,
    store_path: Path,
    fake: FakeApi,
    count: int,
    senders: int = SENDERS,
    tuned: bool = False,
) -> dict[str, Any]:
    """The same ``count`` SMS reminders as jobs all due now, on a paused scheduler; timed from
    ``resume()`` until every job has run (each run ends after its text reached the fake)."""
    catalog, settings = Catalog.default(), Settings()
    due = list(islice(reminders(csv_path, catalog, settings, ("sms",)), count))
    if len(due) < count:
        raise SystemExit(f"{csv_path} has only {len(due)} SMS reminders, not {count}")
    configure_sms(fake)
    store = tuned_store(store_path) if tuned else default_store(store_path)
    scheduler = peer_scheduler(store, senders)
    now = datetime.now(UTC)
    for reminder in due:
        add_job(scheduler, reminder, now)
    outcomes = Outcomes(count)
    scheduler.add_listener(outcomes.record, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    baseline = _peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    scheduler.resume()
    finished = outcomes.done.wait(timeout=60 + count / 20)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    peak = _peak_rss_mb()
    scheduler.shutdown(wait=True)
    close_sms()
    return {
        "messages": count,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "finished": finished,
        "sent": len(outcomes.sids),
        "problems": outcomes.errors + outcomes.missed,
        "jobs_run_twice": len(outcomes.job_ids) - len(set(outcomes.job_ids)),
        "jobs_left_in_store": len(_store_rows(store_path)),
        "expected_texts": _digest((r.to, r.text) for r in due),
        **_at_fake(fake, outcomes.sids),
        "baseline_rss_mb": baseline,
        "peak_rss_mb": peak,
    }


# --- helpers -----------------------------------------------------------------------------------


def _twilio_settings(fake: FakeApi) -> Settings:
    return Settings(
        twilio_account_sid=fake.account_sid,
        twilio_auth_token=fake.auth_token,
        twilio_from_number=fake.from_number,
        twilio_api_url=fake.url,
        # The first texts of the file are made due at once, several to a number: no cap.
        sms_daily_cap=0,
        sms_weekly_cap=0,
    )


def _only_first_sms_due(factory: Any, count: int) -> None:
    """The first ``count`` SMS rows (by id: the import's order, the peer's order) pending and
    claimable now; everything else cancelled. ``due_at`` stays as planned, so the rendered texts
    (which print the step's date) are exactly the ones the peer rendered when it scheduled."""
    first = select(Message.id).where(Message.channel == "sms").order_by(Message.id).limit(count)
    with factory.begin() as session:
        session.execute(update(Message).values(status="cancelled"))
        done = session.execute(
            update(Message)
            .where(Message.id.in_(first.scalar_subquery()))
            .values(status="pending", next_attempt_at=NOW, expires_at=NOW + timedelta(days=1))
        )
    if done.rowcount != count:
        raise SystemExit(f"only {done.rowcount} SMS rows to send, not {count}")


def fake_messages(fake: FakeApi) -> list[tuple[str, str, str]]:
    """(sid, to, body) of every message the fake accepted, read through its list API."""
    base = f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json?PageSize=1000"
    found: list[tuple[str, str, str]] = []
    with requests.Session() as session:
        session.auth = (fake.account_sid, fake.auth_token)
        uri: str | None = base
        while uri:
            page = session.get(fake.url + uri, timeout=30)
            page.raise_for_status()
            payload = page.json()
            found += [(m["sid"], m["to"], m["body"]) for m in payload["messages"]]
            uri = payload["next_page_uri"]
    return found


def _at_fake(fake: FakeApi, sender_sids: list[str]) -> dict[str, Any]:
    """Each message exactly once at the fake: as many texts there as sends, each sid a send
    returned, none twice; and a digest of the texts (to, body) to compare the two sides."""
    messages = fake_messages(fake)
    sids = [sid for sid, _, _ in messages]
    return {
        "at_fake": len(messages),
        "distinct_at_fake": len(set(sids)),
        "sids_match": sorted(sids) == sorted(sender_sids),
        "texts": _digest((to, body) for _, to, body in messages),
    }


def _store_rows(path: Path) -> list[tuple[str, float]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT id, next_run_time FROM apscheduler_jobs").fetchall()
    finally:
        connection.close()


def _epoch(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


def _digest(items: Iterable[tuple[Any, ...]]) -> str:
    """The same for the same multiset of items, whatever their order."""
    lines = sorted(
        "\x1f".join(f"{v:.3f}" if isinstance(v, float) else v for v in item) for item in items
    )
    return hashlib.sha256("\x1e".join(lines).encode()).hexdigest()[:16]


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(name: str, **kwargs: Any) -> dict[str, Any]:
    """One measurement in this process (the benchmark's child); dispatches get a fake Twilio
    process of their own, so every run starts with an empty one."""
    from bench.bench_dispatch import _fake_twilio_process

    paths: dict[str, Any] = {k: Path(v) if k.endswith("_path") else v for k, v in kwargs.items()}
    if name == "schedule_aftercare":
        return schedule_aftercare(**paths)
    if name == "schedule_peer":
        return schedule_peer(**paths)
    with _fake_twilio_process() as raw:
        fake = FakeApi(raw["url"], raw["sid"], raw["token"], raw["from"])
        if name == "dispatch_aftercare":
            return dispatch_aftercare(fake=fake, **paths)
        return dispatch_peer(fake=fake, **paths)


def _in_subprocess(name: str, **kwargs: Any) -> dict[str, Any]:
    # `-c`, not `-m bench.bench_peer`: the jobs name their function as bench.bench_peer:send_sms,
    # which must be the module configure_sms set up, not a second copy of it under __main__.
    code = (
        "import json, sys; from bench.bench_peer import measure; "
        "print(json.dumps(measure(sys.argv[1], **json.loads(sys.argv[2]))))"
    )
    command = [sys.executable, "-c", code, name, json.dumps(kwargs)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --- the run -----------------------------------------------------------------------------------


def check_schedules(ours: dict[str, Any], peer: dict[str, Any], patients: int) -> list[str]:
    """What is wrong with a pair of scheduling runs (nothing, if the list is empty)."""
    wrong = []
    for side, result in (("aftercare", ours), ("peer", peer)):
        if result["patients"] != patients or result["bad"]:
            wrong.append(f"{side}: {result['patients']} of {patients} patients scheduled")
        if result["stored"] != result["reminders"]:
            wrong.append(f"{side}: {result['stored']} stored of {result['reminders']} reminders")
    if ours["reminders"] != peer["reminders"] or ours["due_digest"] != peer["due_digest"]:
        wrong.append("the two sides did not schedule the same reminders at the same times")
    return wrong


def check_dispatches(ours: dict[str, Any], peer: dict[str, Any]) -> list[str]:
    """What is wrong with a pair of dispatch runs (nothing, if the list is empty)."""
    wrong = []
    for side, result in (("aftercare", ours), ("peer", peer)):
        count = result["messages"]
        if result["sent"] != count or result["problems"]:
            wrong.append(f"{side}: {result['sent']} of {count} sent, {result['problems']} not")
        if not (result["at_fake"] == result["distinct_at_fake"] == count):
            wrong.append(f"{side}: {result['at_fake']} texts at the fake for {count} reminders")
        if not result["sids_match"]:
            wrong.append(f"{side}: the fake's messages are not the ones the sends returned")
    if not peer["finished"] or peer["jobs_run_twice"] or peer["jobs_left_in_store"]:
        wrong.append(f"peer: jobs did not each run once and leave the store: {peer}")
    if not (ours["texts"] == peer["texts"] == peer["expected_texts"]):
        wrong.append("the two sides did not send the same texts")
    return wrong


def run(patients: int, dispatched: int) -> dict[str, Any]:
    """Every measurement once, the two sides in turn, so both see the same machine."""
    results: dict[str, Any] = {"patients": patients}

    def measured(key: str, name: str, **kwargs: Any) -> None:
        arguments = {k: str(v) if isinstance(v, Path) else v for k, v in kwargs.items()}
        results[key] = _in_subprocess(name, **arguments)
        _say(f"{key}: {results[key]['seconds']:.2f} s")

    with tempfile.TemporaryDirectory(prefix="aftercare-bench-") as folder:
        work = Path(folder)
        template = migrated_template(work / "template.db")
        patients_csv = write_file(work / f"patients-{patients}.csv", patients)
        send_csv = write_file(work / "send.csv", dispatched // SMS_PER_PATIENT + 1)
        plan_args: dict[str, Any] = {"csv_path": patients_csv}
        send_args: dict[str, Any] = {"csv_path": send_csv, "count": dispatched}
        measured(
            "schedule_aftercare",
            "schedule_aftercare",
            db_path=copy_of(template, work / "s.db"),
            **plan_args,
        )
        measured("schedule_peer", "schedule_peer", store_path=work / "s-jobs.db", **plan_args)
        measured(
            "schedule_peer_tuned",
            "schedule_peer",
            store_path=work / "s-jobs-tuned.db",
            tuned=True,
            **plan_args,
        )
        measured(
            "dispatch_aftercare",
            "dispatch_aftercare",
            db_path=copy_of(template, work / "d.db"),
            **send_args,
        )
        measured("dispatch_peer", "dispatch_peer", store_path=work / "d-jobs.db", **send_args)
        measured(
            "dispatch_peer_tuned",
            "dispatch_peer",
            store_path=work / "d-jobs-tuned.db",
            tuned=True,
            **send_args,
        )
    ours, sent = results["schedule_aftercare"], results["dispatch_aftercare"]
    wrong = check_schedules(ours, results["schedule_peer"], patients)
    wrong += check_schedules(ours, results["schedule_peer_tuned"], patients)
    wrong += check_dispatches(sent, results["dispatch_peer"])
    wrong += check_dispatches(sent, results["dispatch_peer_tuned"])
    if wrong:
        raise SystemExit("the runs did not check out:\n" + "\n".join(wrong))
    return results


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- reporting ---------------------------------------------------------------------------------


Value = Callable[[dict[str, Any]], float]


def table(r: dict[str, Any]) -> str:
    plans = [r["schedule_aftercare"], r["schedule_peer"], r["schedule_peer_tuned"]]
    sends = [r["dispatch_aftercare"], r["dispatch_peer"], r["dispatch_peer_tuned"]]
    n, m = plans[0]["reminders"], sends[0]["messages"]
    rows = [
        _line(
            f"**schedule** {r['patients']:,} patients ({n:,} reminders): wall",
            plans,
            lambda x: x["seconds"],
            "{:.2f} s",
        ),
        _line("… reminders stored per second", plans, lambda x: n / x["seconds"], "**{:,.0f}/s**"),
        _line("… CPU time", plans, lambda x: x["cpu_seconds"], "{:.2f} s"),
        _line(
            "… of which in `add_job` (the job store)",
            plans,
            lambda x: x.get("add_job_seconds", float("nan")),
            "{:.2f} s",
            ratio=False,
        ),
        _line("… peak RSS of the process", plans, lambda x: x["peak_rss_mb"], "{:.0f} MB"),
        _line("… RSS growth while scheduling", plans, _growth, "{:.0f} MB", ratio=False),
        _line(
            f"**send** {m:,} due SMS to the fake Twilio API, {SENDERS} threads: wall",
            sends,
            lambda x: x["seconds"],
            "{:.2f} s",
        ),
        _line("… messages per second", sends, lambda x: m / x["seconds"], "**{:,.0f}/s**"),
        _line("… CPU time", sends, lambda x: x["cpu_seconds"], "{:.2f} s"),
        _line("… peak RSS of the process", sends, lambda x: x["peak_rss_mb"], "{:.0f} MB"),
        _line("… RSS growth while sending", sends, _growth, "{:.0f} MB", ratio=False),
        _line(
            "… texts at the fake, each once (all sides sent the same texts)",
            sends,
            lambda x: x["at_fake"],
            "{:,.0f}",
            ratio=False,
        ),
    ]
    header = [
        "| measurement | aftercare | APScheduler 3, SQLAlchemyJobStore | ÷ aftercare "
        "| the same store, WAL and synchronous=NORMAL | ÷ aftercare |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines = [
        f"Measured {machine()}; SQLite {sqlite3.sqlite_version}, "
        f"APScheduler {_version('apscheduler')}, twilio {_version('twilio')}. One run of each "
        "measurement, each in a fresh process; every check passed.",
        "",
        *header,
        *("| " + " | ".join(row) + " |" for row in rows),
    ]
    return "\n".join(lines)


def _line(
    label: str, results: list[dict[str, Any]], value: Value, form: str, ratio: bool = True
) -> list[str]:
    """One row: aftercare's value, then each peer's with its ratio to aftercare's."""
    ours = value(results[0])
    cells = [label, _cell(form, ours)]
    for peer in results[1:]:
        theirs = value(peer)
        cells += [_cell(form, theirs), _ratio(theirs / ours) if ratio else ""]
    return cells


def _ratio(value: float) -> str:
    return f"{value:.0f}×" if value >= 10 else f"{value:.2f}×"


def _cell(form: str, number: float) -> str:
    return "" if number != number else form.format(number)  # NaN: no such figure on this side


def _growth(result: dict[str, Any]) -> float:
    return float(result["peak_rss_mb"] - result["baseline_rss_mb"])


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 patients, 1,000 SMS; print only")
    parser.add_argument("--no-readme", action="store_true", help="print the table only")
    args = parser.parse_args()
    section = table(run(*((100, 1_000) if args.quick else (1_000, 10_000))))
    print(section)
    if not (args.quick or args.no_readme):
        write_section("peer", section)


if __name__ == "__main__":
    main()
