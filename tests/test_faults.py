"""Faults around a running dispatcher: the database connection killed or the database gone for a
moment under the real daemon process, the SMTP relay down, Twilio answering 429 and 500 in bursts,
SIGTERM at an awkward moment. Whatever happens, the daemon logs it, carries on, and in the end
every message went out exactly once.

Where the retry schedule matters, time is a ManualClock moved by the test; the real daemon
processes run on the wall clock and the test only polls them with a deadline.
"""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import ORMExecuteState

from aftercare.app import App
from aftercare.channels.base import Channel
from aftercare.channels.email import EmailChannel
from aftercare.channels.memory import MemoryChannel
from aftercare.channels.sms import SmsChannel
from aftercare.clock import ManualClock, SystemClock
from aftercare.config import Settings
from aftercare.daemon import Daemon
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher, DispatchOptions
from aftercare.enrollment import parse_request
from aftercare.models import Message
from aftercare.store.enrollments import enroll_many
from tests import test_scale_out
from tests.factories import enroll_due_sms
from tests.fakes.smtp import FakeSmtpServer
from tests.fakes.twilio import FakeTwilio
from tests.test_scale_out import (
    Database,
    StartDaemon,
    assert_each_sent_once,
    log_of,
    stop,
    wait_for,
)

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
FAULTED_SCALE = 3000


# The daemon tests' fixtures: a migrated throwaway PostgreSQL database, a reader of it, and
# real `aftercare run` processes.
pg_url = test_scale_out.pg_url
database = test_scale_out.database
start_daemon = test_scale_out.start_daemon


# --- the database under a running daemon (real processes, PostgreSQL) ---------------------------


@pytest.mark.postgres
def test_connections_killed_under_a_running_daemon_lose_and_duplicate_nothing(
    pg_url: str,
    database: Database,
    fake_twilio: FakeTwilio,
    start_daemon: StartDaemon,
    tmp_path: Path,
) -> None:
    enroll_due_sms(pg_url, FAULTED_SCALE)
    daemon = start_daemon(pg_url, fake_twilio)
    wait_for(lambda: len(fake_twilio.messages) > 0, what="the daemon to start sending")

    killer = create_engine(make_url(pg_url), isolation_level="AUTOCOMMIT")
    kills = 0
    with killer.connect() as connection:
        # Every 0.2 s, every connection of the daemon (pool and all) is terminated, mid-query or
        # idle, between claiming and recording or anywhere else: 15 times in all.
        while kills < 15 and database.statuses()["sent"] < FAULTED_SCALE:
            terminated = connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
            kills += terminated > 0
            time.sleep(0.2)
    killer.dispose()
    wait_for(lambda: database.statuses() == {"sent": FAULTED_SCALE}, what="all sent")

    assert daemon.poll() is None, "the daemon carried on"
    assert stop(daemon) == 0
    assert kills >= 5
    assert_each_sent_once(fake_twilio, database, FAULTED_SCALE)
    log = log_of(tmp_path, 0)
    assert "terminating connection due to administrator command" in log
    assert "+1202555" not in log, "no phone numbers in the log"


class TcpProxy:
    """127.0.0.1:port forwarded to a target port. ``stop`` makes the target unreachable
    (connections refused, open ones cut); ``start`` serves again on the same port.
    ``lose_next_claim_ack`` cuts one connection at the worst moment of a claim."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.lost_acks = 0
        self._listener: socket.socket | None = None
        self._links: set[_Link] = set()
        self._lose_claim_ack = threading.Event()
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            links, self._links = self._links, set()
        for link in links:
            link.cut()

    def lose_next_claim_ack(self) -> None:
        """The next claim of due messages commits on the server, then its connection is cut
        before the answer gets back: the client cannot know that it now owns those rows.
        (Arm it before the client connects: psycopg stops sending a statement's text once it
        has prepared it, and the claim is recognised by its text.)"""
        self._lose_claim_ack.set()

    def armed(self) -> bool:
        return self._lose_claim_ack.is_set()

    def take_lost_ack(self) -> bool:
        """Disarm; True if this caller is the one to lose the answer."""
        with self._lock:
            armed = self._lose_claim_ack.is_set()
            self._lose_claim_ack.clear()
            self.lost_acks += armed
        return armed

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            link = _Link(self, client, upstream)
            with self._lock:
                self._links.add(link)
            threading.Thread(target=link.forward_requests, daemon=True).start()
            threading.Thread(target=link.forward_answers, daemon=True).start()


# The claim of due messages (claims.claim_due), as PostgreSQL receives its text.
CLAIM_SQL = b"ORDER BY message.next_attempt_at"


class _Link:
    """One proxied connection: a client and its upstream socket, and where a claim stands."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy, self.client, self.upstream = proxy, client, upstream
        self.claim = ""  # "", "claiming", "committing"

    def forward_requests(self) -> None:
        def watch(data: bytes) -> bool:
            if CLAIM_SQL in data and self.proxy.armed():
                self.claim = "claiming"
            elif self.claim == "claiming" and b"COMMIT" in data:
                self.claim = "committing"
            return True

        _pump(self.client, self.upstream, watch)

    def forward_answers(self) -> None:
        def watch(data: bytes) -> bool:
            if self.claim == "committing" and self.proxy.take_lost_ack():
                self.cut()  # the server has committed; the client never hears of it
                return False
            return True

        _pump(self.upstream, self.client, watch)

    def cut(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


def _pump(source: socket.socket, sink: socket.socket, watch: Callable[[bytes], bool]) -> None:
    """Copy until either side closes; ``watch`` sees each chunk first and may stop the copy."""
    with contextlib.suppress(OSError):
        while (data := source.recv(65536)) and watch(data):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _accepted_more_than(fake: FakeTwilio, count: int) -> bool:
    return len(fake.messages) > count


@pytest.fixture
def proxy(pg_url: str) -> Iterator[TcpProxy]:
    forward = TcpProxy(make_url(pg_url).port or 5432).start()
    yield forward
    forward.stop()


@pytest.mark.postgres
def test_the_database_gone_for_moments_loses_and_duplicates_nothing(
    pg_url: str,
    proxy: TcpProxy,
    database: Database,
    fake_twilio: FakeTwilio,
    start_daemon: StartDaemon,
    tmp_path: Path,
) -> None:
    enroll_due_sms(pg_url, FAULTED_SCALE)
    # Twilio's own latency, so that sending spans every outage: at 1 ms the pipelined daemon
    # could send the lot between two outages and never meet one.
    fake_twilio.latency = 0.15
    through_proxy = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
    daemon = start_daemon(through_proxy, fake_twilio)
    for outage in range(1, 4):
        # Some sending between outages; each one lands wherever the daemon happens to be.
        wait_for(partial(_accepted_more_than, fake_twilio, 600 * outage), what="sending")
        proxy.stop()
        time.sleep(1.5)  # how long the database is gone (a fault's length, not a schedule)
        proxy.start()
    wait_for(lambda: database.statuses() == {"sent": FAULTED_SCALE}, what="all sent")

    assert daemon.poll() is None, "the daemon carried on"
    assert stop(daemon) == 0
    assert_each_sent_once(fake_twilio, database, FAULTED_SCALE)
    log = log_of(tmp_path, 0)
    assert "Connection refused" in log, "the daemon said what happened"
    assert "+1202555" not in log, "no phone numbers in the log"


LOST_ACK_SCALE = 300


@pytest.mark.postgres
def test_rows_whose_claim_lost_its_answer_are_reconciled_by_their_claimer_at_once(
    pg_url: str,
    proxy: TcpProxy,
    database: Database,
    fake_twilio: FakeTwilio,
    start_daemon: StartDaemon,
    tmp_path: Path,
) -> None:
    """The connection drops just as a claim commits: the rows are ``sending`` under this
    daemon's name, and it cannot know. They must not wait out the lease (5 minutes)."""
    enroll_due_sms(pg_url, LOST_ACK_SCALE)
    proxy.lose_next_claim_ack()
    through_proxy = make_url(pg_url).set(port=proxy.port).render_as_string(hide_password=False)
    daemon = start_daemon(through_proxy, fake_twilio)
    wait_for(lambda: database.statuses() == {"sent": LOST_ACK_SCALE}, what="all sent")

    assert stop(daemon) == 0
    assert proxy.lost_acks == 1
    assert_each_sent_once(fake_twilio, database, LOST_ACK_SCALE)
    assert database.events("reconciling") == 100, "the lost claim's batch, looked up first"
    assert "dispatch pass failed (database error OperationalError" in log_of(tmp_path, 0)


# --- SIGTERM while the daemon plans its next wake-up -------------------------------------------


def test_a_stop_while_the_next_wake_up_is_planned_does_not_hang(db_url: str) -> None:
    """APScheduler's shutdown waits for the running tick while holding the lock the tick needs
    to re-plan: a stop in that moment used to hang the daemon for good."""
    app = App(Settings(database_url=db_url, quiet_hours=None), SystemClock())
    dispatcher = Dispatcher(
        app.sessions, {"sms": MemoryChannel("sms")}, app.catalog, app.settings, app.clock, "w"
    )
    daemon = Daemon(dispatcher, poll=600)
    stopper = threading.Thread(target=daemon.stop)

    @event.listens_for(app.sessions, "do_orm_execute")
    def _stop_now(state: ORMExecuteState) -> None:
        # The next-due query is the tick's last word with the database before re-planning.
        if "min(message.next_attempt_at)" in str(state.statement) and stopper.ident is None:
            stopper.start()
            assert daemon.stop_requested.wait(10)

    daemon.start()
    wait_for(lambda: stopper.is_alive() or daemon.stop_requested.is_set(), what="the tick")
    stopper.join(timeout=20)
    hung = stopper.is_alive()
    app.close()
    assert not hung, "stop() deadlocked with the tick"


# --- providers down or pushing back (in-process, on a ManualClock) -------------------------------


def _enroll(app: App, count: int, channels: str, discharged_at: datetime, tag: str = "") -> None:
    requests = [
        parse_request(
            {
                "first_name": f"P{tag}{i}",
                "phone": f"+1202555{i:04d}",
                "email": f"p{tag}{i}@example.org",
                "timezone": "UTC",
                "procedure": "kyphoplasty",
                "discharged_at": discharged_at.isoformat(),
                "channels": channels,
            },
            app.catalog,
            app.clock.now(),
        )
        for i in range(count)
    ]
    with transaction(app.sessions) as session:
        enroll_many(session, requests, app.settings, app.clock.now(), "staff:test")


def _dispatcher(app: App, channel: str, provider: Channel) -> Dispatcher:
    return Dispatcher(
        app.sessions,
        {channel: provider},
        app.catalog,
        app.settings,
        app.clock,
        "w1",
        DispatchOptions(batch_size=100, senders=4),
        rng=random.Random(3),
    )


def _rows(app: App, channel: str) -> list[Message]:
    with app.sessions() as session:
        return list(
            session.scalars(
                select(Message).where(Message.step == "welcome-home", Message.channel == channel)
            )
        )


def _wait(row: Message, clock: ManualClock) -> timedelta:
    """How long until the row's next attempt."""
    assert row.next_attempt_at is not None
    return row.next_attempt_at - clock.now()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


@pytest.fixture
def make_app(db_url: str, clock: ManualClock) -> Iterator[Callable[..., App]]:
    made: list[App] = []

    def make(**settings: Any) -> App:
        made.append(App(Settings(database_url=db_url, quiet_hours=None, **settings), clock))
        return made[-1]

    yield make
    for app in made:
        app.close()


WELCOME_DELAY = timedelta(hours=2)  # the welcome is due two hours after discharge


def test_emails_wait_out_an_smtp_outage_and_go_out_once_after_it(
    make_app: Callable[..., App],
    clock: ManualClock,
    make_smtp_server: Callable[..., FakeSmtpServer],
) -> None:
    relay: FakeSmtpServer = make_smtp_server()
    app = make_app(smtp_url=relay.url, email_from="clinic@example.org")
    _enroll(app, 10, "email", NOW - WELCOME_DELAY, tag="a")
    _enroll(app, 10, "email", NOW - WELCOME_DELAY + timedelta(minutes=10), tag="b")
    dispatcher = _dispatcher(app, "email", EmailChannel(app.settings))
    try:
        assert dispatcher.dispatch_due() == {"sent": 10, "expired": 0}  # connections now open

        relay.stop()  # the relay goes down: open connections drop, new ones are refused
        clock.advance(timedelta(minutes=10))
        assert dispatcher.dispatch_due()["pending"] == 10
        waiting = [r for r in _rows(app, "email") if r.status == "pending"]
        assert len(waiting) == 10
        for row in waiting:
            assert (row.attempts, row.error_code) == (1, "connection")
            assert timedelta(seconds=30) <= _wait(row, clock) <= timedelta(seconds=60), "backoff"
        assert +dispatcher.dispatch_due() == {}, "nothing is retried before its time"

        relay.start()
        clock.advance(timedelta(seconds=61))
        assert dispatcher.dispatch_due()["sent"] == 10
    finally:
        dispatcher.close()

    assert Counter(r.status for r in _rows(app, "email")) == {"sent": 20}
    recipients = Counter(to for m in relay.messages for to in m.rcpt_tos)
    assert len(recipients) == 20 and max(recipients.values()) == 1
    assert len({m.message["Message-ID"] for m in relay.messages}) == 20


def test_twilio_429_and_500_bursts_back_off_honour_retry_after_and_lose_nothing(
    make_app: Callable[..., App], clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.now = clock.now  # Twilio's record times on the same clock as ours
    app = make_app(**_twilio_settings(fake_twilio))
    _enroll(app, 40, "sms", NOW - WELCOME_DELAY)
    dispatcher = _dispatcher(app, "sms", SmsChannel(app.settings))
    fake_twilio.fail_next(10, status=429, retry_after=300)
    fake_twilio.fail_next(10, status=500)
    try:
        assert dispatcher.dispatch_due()["sent"] == 20
        rows = {r.id: r for r in _rows(app, "sms") if r.status == "pending"}
        codes = Counter(r.error_code for r in rows.values())
        assert codes == {"20429": 10, "20500": 10}
        for row in rows.values():
            wait = _wait(row, clock)
            if row.error_code == "20429":
                assert wait >= timedelta(seconds=300), "Retry-After is a floor"
            else:
                assert timedelta(seconds=30) <= wait <= timedelta(seconds=60), "backoff"

        fake_twilio.fail_next(3, status=500)  # a second burst hits the first retries
        clock.advance(timedelta(seconds=61))
        assert dispatcher.dispatch_due() == {"sent": 7, "pending": 3, "expired": 0}
        throttled = [r for r in _rows(app, "sms") if r.error_code == "20429"]
        assert all((r.status, r.attempts) == ("pending", 1) for r in throttled)

        clock.advance(timedelta(seconds=300 - 61))
        assert dispatcher.dispatch_due()["sent"] == 13
    finally:
        dispatcher.close()

    assert Counter(r.status for r in _rows(app, "sms")) == {"sent": 40}
    sent_to = Counter(m.to for m in fake_twilio.messages)
    assert len(sent_to) == 40 and max(sent_to.values()) == 1
    # The 5xx retries looked in Twilio's list first (a 500 may come after the text went out).
    assert fake_twilio.requests["list"] >= 10
    assert fake_twilio.requests["create"] == 40 + 10 + 10 + 3


def test_one_retry_after_a_twilio_500_makes_one_list_call_then_sends(
    make_app: Callable[..., App], clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.now = clock.now
    app = make_app(**_twilio_settings(fake_twilio))
    _enroll(app, 1, "sms", NOW - WELCOME_DELAY)
    dispatcher = _dispatcher(app, "sms", SmsChannel(app.settings))
    fake_twilio.fail_next(1, status=500)
    try:
        assert dispatcher.dispatch_due()["pending"] == 1
        clock.advance(timedelta(seconds=61))
        assert dispatcher.dispatch_due()["sent"] == 1
    finally:
        dispatcher.close()

    assert fake_twilio.requests["create"] == 2
    assert fake_twilio.requests["list"] == 1  # the retry looked once, in one place
    assert len(fake_twilio.messages) == 1


@pytest.mark.parametrize("lose_the_answer", ["timeout", "dropped connection"])
def test_when_twilios_answer_is_lost_the_retry_finds_the_text_instead_of_sending_it_again(
    make_app: Callable[..., App],
    clock: ManualClock,
    fake_twilio: FakeTwilio,
    lose_the_answer: str,
) -> None:
    fake_twilio.now = clock.now
    app = make_app(**_twilio_settings(fake_twilio))
    _enroll(app, 1, "sms", NOW - WELCOME_DELAY)
    dispatcher = _dispatcher(app, "sms", SmsChannel(app.settings, timeout=0.2))
    if lose_the_answer == "timeout":
        fake_twilio.stall_next(1, 1.0)
    else:
        fake_twilio.drop_next(1, after_accepting=True)
    try:
        assert dispatcher.dispatch_due()["pending"] == 1
        clock.advance(timedelta(seconds=61))
        assert dispatcher.dispatch_due()["sent"] == 1
    finally:
        dispatcher.close()

    [received] = fake_twilio.messages
    [row] = _rows(app, "sms")
    assert row.provider_id == received.sid
    assert fake_twilio.requests["create"] == 1


def test_a_dropped_connection_before_twilio_took_the_text_is_retried_by_sending(
    make_app: Callable[..., App], clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    fake_twilio.now = clock.now
    app = make_app(**_twilio_settings(fake_twilio))
    _enroll(app, 1, "sms", NOW - WELCOME_DELAY)
    dispatcher = _dispatcher(app, "sms", SmsChannel(app.settings))
    fake_twilio.drop_next(1)
    try:
        assert dispatcher.dispatch_due()["pending"] == 1
        clock.advance(timedelta(seconds=61))
        assert dispatcher.dispatch_due()["sent"] == 1
    finally:
        dispatcher.close()

    assert len(fake_twilio.messages) == 1
    assert fake_twilio.requests["list"] == 1  # it looked first: the drop could have been late


def _twilio_settings(fake: FakeTwilio) -> dict[str, Any]:
    return {
        "twilio_account_sid": fake.account_sid,
        "twilio_auth_token": fake.auth_token,
        "twilio_from_number": fake.from_number,
        "twilio_api_url": fake.url,
    }
