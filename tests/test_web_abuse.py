"""Web answers that cannot be abused: a link scanner's HEAD never unsubscribes, a huge body or a
crowd of idle sockets cannot starve the server, concurrent requests answer 200 and lose nothing,
and a receipt or a token that is not what it should be changes nothing. Over real sockets."""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from aftercare.channels.memory import MemoryChannel
from aftercare.dispatch import Dispatcher
from aftercare.models import Message, Reply, Suppression
from aftercare.tokens import make_token
from tests.factories import enroll
from tests.processes import aftercare, answers, free_port, wait_for

STATUS, INBOUND = "/webhooks/twilio/status", "/webhooks/twilio/inbound"
UNENROLLED = "+12025550199"


def _count(app: Any, model: Any, *where: Any) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _statuses(app: Any, channel: str) -> list[str]:
    with app.sessions() as session:
        return list(session.scalars(select(Message.status).where(Message.channel == channel)))


def _at_once(count: int, call: Callable[[int], requests.Response]) -> list[int]:
    """``count`` requests at the same moment (as far as threads allow); their status codes."""
    with ThreadPoolExecutor(count) as pool:
        return [r.status_code for r in pool.map(call, range(count))]


# --- 6: only POST unsubscribes ------------------------------------------------------------------


def test_a_head_request_on_the_unsubscribe_link_changes_nothing(web, clock):
    enroll(web.app, clock.now(), email="ana@example.org")
    token = make_token(web.app.settings.secret_key, 1, "email")
    head = requests.head(f"{web.url}/unsubscribe/{token}", timeout=5)
    assert head.status_code == 200
    assert _count(web.app, Suppression) == 0
    assert set(_statuses(web.app, "email")) == {"pending"}


# --- 7: waitress's own limits, under `aftercare serve` -------------------------------------------


@pytest.fixture
def served(tmp_path: Path, sqlite_template: Path) -> Any:
    """The real ``aftercare serve`` on a migrated SQLite file; yields its base URL."""
    path = tmp_path / "aftercare.db"
    path.write_bytes(sqlite_template.read_bytes())
    port = free_port()
    env = {"AFTERCARE_DATABASE_URL": f"sqlite:///{path}"}
    with aftercare(tmp_path / "serve.log", "serve", "--port", str(port), env=env, cwd=tmp_path):
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(base + "/healthz"))
        yield base, port


def test_a_huge_body_is_refused_before_it_is_read(served):
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(
            b"POST /webhooks/twilio/inbound HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 500000000\r\n\r\n" + b"a" * 1024
        )
        # Not one more byte is sent: the answer must come from the headers alone.
        status_line = connection.recv(64).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413")


def test_120_idle_connections_do_not_starve_healthz(served):
    base, port = served
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(120)]
    try:
        assert requests.get(base + "/healthz", timeout=5).status_code == 503  # no dispatcher
    finally:
        for connection in idle:
            connection.close()


# --- 8: concurrency answers 200 and loses nothing ------------------------------------------------


def test_eight_concurrent_unsubscribes_all_answer_200(web, clock):
    enroll(web.app, clock.now(), email="ana@example.org")
    url = f"{web.url}/unsubscribe/{make_token(web.app.settings.secret_key, 1, 'email')}"
    codes = _at_once(8, lambda _: requests.post(url, timeout=30))
    assert codes == [200] * 8
    assert _count(web.app, Suppression) == 1
    assert set(_statuses(web.app, "email")) == {"suppressed"}


def test_eight_concurrent_stops_from_an_unenrolled_number_are_all_stored(web):
    def stop(i: int) -> requests.Response:
        return web.signed_post(
            INBOUND, {"MessageSid": f"SM{i:032d}", "From": UNENROLLED, "Body": "STOP"}
        )

    assert _at_once(8, stop) == [200] * 8
    assert _count(web.app, Reply) == 8
    assert _count(web.app, Suppression) == 1


def test_one_text_delivered_eight_times_at_once_is_stored_once_and_answered_alike(web):
    def deliver(_: int) -> requests.Response:
        return web.signed_post(
            INBOUND, {"MessageSid": "SM" + "7" * 32, "From": UNENROLLED, "Body": "HELP"}
        )

    with ThreadPoolExecutor(8) as pool:
        answers_ = list(pool.map(deliver, range(8)))
    assert [a.status_code for a in answers_] == [200] * 8
    assert len({a.text for a in answers_}) == 1
    assert _count(web.app, Reply) == 1


# --- 9: what is not ours changes nothing ---------------------------------------------------------


@pytest.mark.parametrize("token", ["1.email.é", "١.email.AAAAAAAAAAAAAAAAAAAAAA", "1.email.💥"])
def test_a_non_ascii_unsubscribe_token_answers_404(web, clock, token):
    enroll(web.app, clock.now(), email="ana@example.org")
    for method in (requests.get, requests.post):
        assert method(f"{web.url}/unsubscribe/{token}", timeout=5).status_code == 404
    assert _count(web.app, Suppression) == 0


def _dispatch(app: Any, clock: Any) -> dict[str, MemoryChannel]:
    channels = {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")}
    dispatcher = Dispatcher(
        app.sessions, channels, app.catalog, app.settings, clock, "w", rng=random.Random(1)
    )
    try:
        dispatcher.dispatch_due()
    finally:
        dispatcher.close()
    return channels


def test_a_status_callback_naming_an_emails_id_leaves_the_email_alone(web, clock):
    enroll(web.app, clock.now(), email="ana@example.org")
    clock.set(clock.now().replace(hour=18))
    _dispatch(web.app, clock)
    with web.app.sessions() as session:
        email_id = session.scalar(
            select(Message.provider_id).where(Message.channel == "email", Message.status == "sent")
        )
    assert email_id
    answer = web.signed_post(
        STATUS, {"MessageSid": email_id, "MessageStatus": "failed", "ErrorCode": "30005"}
    )
    assert answer.status_code == 200
    assert _count(web.app, Message, Message.channel == "email", Message.status == "failed") == 0
    assert _count(web.app, Suppression) == 0


def test_an_unsubscribed_address_is_suppressed_whatever_its_letter_case(web, clock):
    enroll(web.app, clock.now(), email="ana@example.org")
    token = make_token(web.app.settings.secret_key, 1, "email")
    assert requests.post(f"{web.url}/unsubscribe/{token}", timeout=5).status_code == 200
    enroll(
        web.app,
        clock.now(),
        first_name="Bea",
        phone="+12025550177",
        email="Ana@EXAMPLE.ORG",
        procedure="vertebroplasty",
    )
    clock.set(clock.now().replace(hour=18))
    channels = _dispatch(web.app, clock)
    assert channels["email"].sent == []
    assert _count(web.app, Message, Message.channel == "email", Message.status == "sent") == 0
