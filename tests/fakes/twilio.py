"""A fake of the Twilio REST API (2010-04-01) on 127.0.0.1, for the real twilio SDK.

It speaks the part of the API aftercare uses, with Twilio's shapes: create, list (filters and
paging) and fetch Messages, and fetch the Account. It checks Basic auth (401, code 20003) and
answers Twilio's magic test numbers as Twilio does for test credentials::

    To   +15005550001 -> 400 21211 invalid 'To'      From +15005550001 -> 400 21212 invalid 'From'
         +15005550002 -> 400 21612 cannot route           +15005550007 -> 400 21606 not yours
         +15005550003 -> 400 21408 region disabled        +15005550008 -> 400 21611 queue full
         +15005550004 -> 400 21610 unsubscribed
         +15005550009 -> 400 21614 not a mobile

Faults for the next create requests (``on="list"`` for lists): ``fail_next(n, status=429,
retry_after=2)`` (or 500, 503, ...), ``drop_next(n)`` (the connection closes without an answer;
``after_accepting=True``: the message was taken first, so the client cannot know) and
``stall_next(n, seconds)`` (the message is taken, the answer comes late: a client timeout).

Hooks, run on the handler thread (a crash test kills the client there): ``on_request(kind)`` as
each authorised request arrives, fully read, before it is handled (the client is waiting for the
answer); ``on_accepted(message)`` once a create was taken, before its answer is written (Twilio
has the message, the client has not heard so yet).

``latency_ms`` (``--latency-ms``) makes every request take that long, as Twilio's API does from a
data centre (about 100-300 ms): half of it before the request is handled (the way there), half
before the answer is written (the way back). Each connection has its own thread, so many slow
requests overlap and the fake is not the bottleneck. ``creates`` (or ``GET /fake/creates.json``
in a standalone fake) holds when each create request arrived and from which sender: a rate limit
is checked against it.

In tests, take the ``fake_twilio`` fixture; ``fake_twilio.settings()`` is a Settings for it and
``fake_twilio.messages`` what it accepted. Each response goes out in one write on a TCP_NODELAY
socket over HTTP/1.1 keep-alive, so the SDK does well over a thousand requests a second.

Standalone (prints its URL on the first line of stdout, then runs until SIGTERM or Ctrl-C; read
what it received through the API itself, ``GET /2010-04-01/Accounts/{Sid}/Messages.json``)::

    python -m tests.fakes.twilio --port 8026 [--latency-ms 150] [--account-sid AC... --auth-token T
                                 --from +1...]
"""

from __future__ import annotations

import argparse
import base64
import binascii
import contextlib
import json
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from email.utils import format_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from aftercare.config import Settings

HOST = "127.0.0.1"
ACCOUNT_SID = "AC" + "5ca1ab1e" * 4
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
FROM_NUMBER = "+15005550006"  # Twilio's "passes all validation" sender
MAX_BODY = 1600  # characters; Twilio refuses longer bodies (21617)

_TO_ERRORS = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable via SMS."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for the region "
                            "indicated by the 'To' number: {to}."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number {to} is not a valid mobile number"),
}  # fmt: skip
_FROM_ERRORS = {
    "+15005550001": (21212, "The 'From' number {from_} is not a valid phone number."),
    "+15005550007": (21606, "The 'From' phone number provided ({from_}) is not a valid "
                            "message-capable Twilio phone number for this destination/account."),
    "+15005550008": (21611, "This 'From' number has exceeded the maximum number of queued "
                            "messages"),
}  # fmt: skip
ARRIVALS_PATH = "/fake/creates.json"  # the fake's own: when each create request arrived
_FAULT_CODES = {429: (20429, "Too Many Requests"), 500: (20500, "Internal Server Error")}


@dataclass(frozen=True)
class FakeMessage:
    """One message the fake accepted, as the client sent it."""

    sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    date_created: datetime
    params: dict[str, str] = field(default_factory=dict)  # every form field, as received
    # As at Twilio: "queued" with no date_sent until it goes out (see FakeTwilio.mark_sent).
    status: str = "queued"
    date_sent: datetime | None = None

    def resource(self, account_sid: str) -> dict[str, Any]:
        """The message as Twilio's API shows it (``api.v2010.account.message``)."""
        uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{self.sid}"
        sent = format_datetime(self.date_sent) if self.date_sent else None
        return {
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "body": self.body,
            "date_created": format_datetime(self.date_created),
            "date_sent": sent,
            "date_updated": sent or format_datetime(self.date_created),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_ or FROM_NUMBER,  # a service picks a number from its pool
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(_segments(self.body)),
            "price": None,
            "price_unit": "USD",
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }


@dataclass(frozen=True)
class Arrival:
    """A create request as it reached the fake: when (epoch seconds) and from which sender."""

    at: float
    sender: str


def busiest_second(arrivals: list[Arrival], sender: str) -> int:
    """The most create requests from ``sender`` that arrived within any one second."""
    times = sorted(a.at for a in arrivals if a.sender == sender)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


@dataclass(frozen=True)
class _Fault:
    status: int = 0  # 0: answer normally (after a stall), or not at all (drop)
    retry_after: float | None = None
    code: int | None = None
    drop: bool = False
    accept: bool = False  # take the message before misbehaving
    stall: float = 0.0


class ApiError(Exception):
    """An error answer in Twilio's JSON shape."""

    def __init__(self, status: int, code: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }


class FakeTwilio:
    def __init__(
        self,
        *,
        port: int = 0,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        from_number: str = FROM_NUMBER,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        latency_ms: float = 0.0,
    ) -> None:
        if latency_ms < 0:
            raise ValueError(f"latency_ms must be 0 or more, got {latency_ms}")
        self.port = port
        self.latency = latency_ms / 1000  # seconds for each request, there and back
        self.account_sid, self.auth_token, self.from_number = account_sid, auth_token, from_number
        self.now = now  # when a message is created; tests may replace it
        self._messages: list[FakeMessage] = []
        self._faults: dict[str, list[_Fault]] = {}  # by request kind
        self._requests: Counter[str] = Counter()
        self._arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        self.on_request: Callable[[str], None] | None = None
        self.on_accepted: Callable[[FakeMessage], None] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- what tests look at ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, an ``AFTERCARE_TWILIO_API_URL`` (``http://127.0.0.1:PORT``)."""
        return f"http://{HOST}:{self.port}"

    @property
    def messages(self) -> list[FakeMessage]:
        """A snapshot of the accepted messages, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def requests(self) -> Counter[str]:
        """How many requests of each kind arrived: "create", "list", "fetch", "account", plus
        "unauthorized" and "not found"; faults count under the kind they hit. "connection"
        counts TCP connections (keep-alive makes it far smaller than the rest)."""
        with self._lock:
            return Counter(self._requests)

    @property
    def creates(self) -> list[Arrival]:
        """Every create request that arrived (accepted, refused or faulted), in arrival order."""
        with self._lock:
            return list(self._arrivals)

    def note_create(self, form: dict[str, str]) -> None:
        sender = form.get("MessagingServiceSid") or form.get("From") or ""
        with self._lock:
            self._arrivals.append(Arrival(time.time(), sender))

    def settings(self, base: Settings | None = None, **overrides: Any) -> Settings:
        """``base`` (default: Settings()) pointed at this fake, with ``overrides`` applied."""
        return replace(
            base or Settings(),
            **{
                "twilio_account_sid": self.account_sid,
                "twilio_auth_token": self.auth_token,
                "twilio_from_number": self.from_number,
                "twilio_api_url": self.url,
                **overrides,
            },
        )

    def environ(self) -> dict[str, str]:
        """The same as environment variables, for a daemon in another process."""
        return {
            "TWILIO_ACCOUNT_SID": self.account_sid,
            "TWILIO_AUTH_TOKEN": self.auth_token,
            "TWILIO_FROM_NUMBER": self.from_number,
            "AFTERCARE_TWILIO_API_URL": self.url,
        }

    def mark_sent(self, *sids: str) -> None:
        """Twilio sent these messages (default: all queued ones) to the carrier just now."""
        sent_at = self.now().astimezone(UTC).replace(microsecond=0)
        with self._lock:
            self._messages = [
                replace(m, status="sent", date_sent=sent_at)
                if m.status == "queued" and (not sids or m.sid in sids)
                else m
                for m in self._messages
            ]

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()
            self._faults.clear()
            self._requests.clear()
            self._arrivals.clear()

    # --- switches (each applies to the next create requests, in order) ----------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 500,
        retry_after: float | None = None,
        code: int = 0,
        on: str = "create",
    ) -> None:
        """Refuse the next ``n`` requests of kind ``on`` ("create", "list", "fetch") with HTTP
        ``status``; 429 carries ``Retry-After`` (when given) and code 20429, 500 code 20500,
        others ``code`` or the status itself."""
        fault = _Fault(status=status, retry_after=retry_after, code=code or None)
        self._add_faults(n, fault, on)

    def drop_next(self, n: int = 1, *, after_accepting: bool = False, on: str = "create") -> None:
        """Close the connection without an answer. ``after_accepting`` (creates): the message
        is recorded first (Twilio took it, the answer got lost)."""
        self._add_faults(n, _Fault(drop=True, accept=after_accepting), on)

    def stall_next(self, n: int, seconds: float) -> None:
        """Accept the next ``n`` messages, then wait ``seconds`` before each answer (a client
        timeout)."""
        self._add_faults(n, _Fault(accept=True, stall=seconds), "create")

    def _add_faults(self, n: int, fault: _Fault, on: str) -> None:
        if on not in {kind for _, _, kind in _ROUTES}:
            raise ValueError(f"no requests of kind {on!r}")
        if fault.accept and on != "create":
            raise ValueError("only creates accept a message")
        with self._lock:
            self._faults.setdefault(on, []).extend([fault] * n)

    # --- running ---------------------------------------------------------------------------

    def start(self) -> FakeTwilio:
        """Listen (again, on the same port after :meth:`stop`)."""
        self._server = _Server((HOST, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections: clients now see "connection refused"."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.cut_connections()
        self._server = None
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> FakeTwilio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the API (runs on the server's handler threads) -------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        """The JSON answer (or raises ApiError); ``_Handler`` deals with the HTTP side."""
        route = _route(method, path)
        if route is None:
            self.count("not found")
            raise ApiError(404, 20404, f"The requested resource {path} was not found")
        kind, account, sid = route
        self.count(kind)
        if account != self.account_sid:
            raise ApiError(404, 20404, f"The requested resource {path} was not found")
        if kind == "create":
            return 201, self._create(form)
        if kind == "list":
            return 200, self._list(query)
        if kind == "fetch":
            return 200, self._fetch(sid)
        return 200, self._account()

    def check_auth(self, header: str | None) -> bool:
        expected = f"{self.account_sid}:{self.auth_token}"
        if not header or not header.startswith("Basic "):
            return False
        try:
            given = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return given == expected

    def take_fault(self, method: str, path: str) -> tuple[str, _Fault] | None:
        route = _route(method, path)
        if route is None:
            return None
        with self._lock:
            queue = self._faults.get(route[0])
            return (route[0], queue.pop(0)) if queue else None

    def fault_error(self, fault: _Fault) -> ApiError:
        code, text = _FAULT_CODES.get(fault.status, (fault.status, HTTPStatus(fault.status).phrase))
        headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
        return ApiError(fault.status, fault.code or code, text, headers)

    def count(self, kind: str) -> None:
        with self._lock:
            self._requests[kind] += 1

    def _create(self, form: dict[str, str]) -> dict[str, Any]:
        message = self.accept(form)
        return message.resource(self.account_sid)

    def accept(self, form: dict[str, str]) -> FakeMessage:
        """Validate a create request as Twilio would and record the message."""
        to, from_, service = form.get("To"), form.get("From"), form.get("MessagingServiceSid")
        body = form.get("Body", "")
        if not to:
            raise ApiError(400, 21604, "A 'To' phone number is required.")
        if not (from_ or service):
            raise ApiError(400, 21603, "A 'From' phone number is required.")
        if not body:
            raise ApiError(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            text = f"The concatenated message body exceeds the {MAX_BODY} character limit."
            raise ApiError(400, 21617, text)
        if from_ in _FROM_ERRORS:
            code, text = _FROM_ERRORS[from_]
            raise ApiError(400, code, text.format(from_=from_))
        if from_ is not None and from_ != self.from_number:
            code, text = _FROM_ERRORS["+15005550007"]
            raise ApiError(400, code, text.format(from_=from_))
        if to in _TO_ERRORS:
            code, text = _TO_ERRORS[to]
            raise ApiError(400, code, text.format(to=to))
        message = FakeMessage(
            sid=f"SM{uuid.uuid4().hex}",
            to=to,
            from_=from_,
            body=body,
            messaging_service_sid=service,
            status_callback=form.get("StatusCallback"),
            date_created=self.now().astimezone(UTC).replace(microsecond=0),
            params=dict(form),
        )
        with self._lock:
            self._messages.append(message)
        if self.on_accepted is not None:
            self.on_accepted(message)
        return message

    def _list(self, query: dict[str, str]) -> dict[str, Any]:
        try:
            size = min(int(query.get("PageSize", "50")), 1000)
            page = int(query.get("Page", "0"))
        except ValueError:
            raise ApiError(400, 20001, "Invalid paging parameters") from None
        if size < 1 or page < 0:
            raise ApiError(400, 20001, "Invalid paging parameters")
        found = [m for m in reversed(self.messages) if _matches(m, query)]  # newest first
        chunk = found[page * size : (page + 1) * size]
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        filters = {k: v for k, v in query.items() if k not in {"Page", "PageSize", "PageToken"}}

        def page_uri(number: int) -> str:
            return f"{base}?{urlencode({**filters, 'PageSize': size, 'Page': number})}"

        more = (page + 1) * size < len(found)
        return {
            "messages": [m.resource(self.account_sid) for m in chunk],
            "page": page,
            "page_size": size,
            "start": page * size,
            "end": page * size + max(len(chunk) - 1, 0),
            "uri": page_uri(page),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if more else None,
            "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        }

    def _fetch(self, sid: str | None) -> dict[str, Any]:
        for message in self.messages:
            if message.sid == sid:
                return message.resource(self.account_sid)
        raise ApiError(404, 20404, f"The requested resource /Messages/{sid}.json was not found")

    def _account(self) -> dict[str, Any]:
        return {
            "sid": self.account_sid,
            "owner_account_sid": self.account_sid,
            "friendly_name": "aftercare fake account",
            "status": "active",
            "type": "Full",
            "date_created": "Mon, 02 Nov 2026 10:00:00 +0000",
            "date_updated": "Mon, 02 Nov 2026 10:00:00 +0000",
            "uri": f"/2010-04-01/Accounts/{self.account_sid}.json",
            "subresource_uris": {
                "messages": f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
            },
        }


_ROUTES = [
    ("POST", re.compile(r"/2010-04-01/Accounts/([^/]+)/Messages\.json"), "create"),
    ("GET", re.compile(r"/2010-04-01/Accounts/([^/]+)/Messages\.json"), "list"),
    ("GET", re.compile(r"/2010-04-01/Accounts/([^/]+)/Messages/([^/]+)\.json"), "fetch"),
    ("GET", re.compile(r"/2010-04-01/Accounts/([^/]+)\.json"), "account"),
]


def _route(method: str, path: str) -> tuple[str, str, str | None] | None:
    """(kind, account sid, message sid) for a known endpoint."""
    for verb, pattern, kind in _ROUTES:
        match = pattern.fullmatch(path)
        if verb == method and match:
            return kind, match.group(1), match.group(2) if pattern.groups > 1 else None
    return None


def _matches(message: FakeMessage, query: dict[str, str]) -> bool:
    """Twilio's list filters. DateSent compares GMT dates (``>``/``<`` inclusive), so it never
    matches a message that is still queued."""
    sent = message.date_sent.date() if message.date_sent else None
    checks = [
        ("To", lambda v: message.to == v),
        ("From", lambda v: (message.from_ or FROM_NUMBER) == v),
        ("DateSent", lambda v: sent is not None and sent == _day(v)),
        ("DateSent>", lambda v: sent is not None and sent >= _day(v)),
        ("DateSent<", lambda v: sent is not None and sent <= _day(v)),
    ]
    return all(check(query[name]) for name, check in checks if name in query)


def _day(raw: str) -> date:
    """``YYYY-MM-DD`` or an ISO 8601 date-time (the SDK sends ``...T00:00:00Z``)."""
    try:
        return date.fromisoformat(raw[:10])
    except ValueError:
        raise ApiError(400, 20001, f"Invalid date: {raw}") from None


def _segments(body: str) -> int:
    single, multi = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // multi)


# --- the HTTP side ------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[_Handler], fake: FakeTwilio):
        self.fake = fake
        self.open_sockets: set[socket.socket] = set()
        self.sockets_lock = threading.Lock()
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away mid-answer (a timeout, a stopped test) is expected
        super().handle_error(request, client_address)

    def cut_connections(self) -> None:
        """Keep-alive connections outlive ``shutdown()``; a stopped server must not answer."""
        with self.sockets_lock:
            sockets, self.open_sockets = self.open_sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the SDK's session reuses its connection
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in one write anyway; NODELAY also spares the client Nagle's
        # wait when the kernel splits a large list page.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.sockets_lock:
            self.server.open_sockets.add(self.connection)
        self.server.fake.count("connection")

    def finish(self) -> None:
        with self.server.sockets_lock:
            self.server.open_sockets.discard(self.connection)
        super().finish()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: the tests' output is for the tests

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        query = _single(parse_qs(parts.query, keep_blank_values=True))
        form = self._form()
        if not fake.check_auth(self.headers.get("Authorization")):
            fake.count("unauthorized")
            error = ApiError(401, 20003, "Authenticate")
            headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'}
            self._reply(401, error.body(), headers)
            return
        if method == "GET" and parts.path == ARRIVALS_PATH:
            arrivals = [{"at": a.at, "sender": a.sender} for a in fake.creates]
            self._reply(200, {"creates": arrivals})
            return
        route = _route(method, parts.path)
        if route is not None and route[0] == "create":
            fake.note_create(form)
        if fake.on_request is not None:
            fake.on_request(route[0] if route else "not found")
        time.sleep(fake.latency / 2)  # the way there; the way back is in _reply
        taken = fake.take_fault(method, parts.path)
        if taken is not None:
            self._misbehave(*taken, form)
            return
        try:
            status, payload = fake.handle(method, parts.path, query, form)
        except ApiError as error:
            self._reply(error.status, error.body(), error.headers)
            return
        self._reply(status, payload)

    def _misbehave(self, kind: str, fault: _Fault, form: dict[str, str]) -> None:
        fake = self.server.fake
        fake.count(kind)
        try:
            message = fake.accept(form) if fault.accept else None
        except ApiError as error:  # a message Twilio would refuse is refused, fault or not
            self._reply(error.status, error.body(), error.headers)
            return
        if fault.drop:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif message is not None:
            time.sleep(fault.stall)
            self._reply(201, message.resource(fake.account_sid))
        else:
            error = fake.fault_error(fault)
            self._reply(error.status, error.body(), error.headers)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if "application/x-www-form-urlencoded" not in self.headers.get("Content-Type", ""):
            return {}
        return _single(parse_qs(raw.decode("utf-8"), keep_blank_values=True))

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            "Content-Type: application/json; charset=utf-8",
            f"Content-Length: {len(body)}",
            f"Twilio-Request-Id: RQ{uuid.uuid4().hex}",
            *(f"{name}: {value}" for name, value in (headers or {}).items()),
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if status != 401:  # a refused login was answered at once (no latency was spent on it)
            time.sleep(self.server.fake.latency / 2)
        # One write: headers and body in separate segments would meet the client's delayed ACK
        # and stall every request for ~40 ms.
        self.wfile.write(head + body)


def _single(values: dict[str, list[str]]) -> dict[str, str]:
    return {key: items[-1] for key, items in values.items()}


# --- pytest fixtures ---------------------------------------------------------------------------


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    """A started fake of the Twilio API on a free loopback port, stopped after the test."""
    with FakeTwilio() as fake:
        yield fake


# --- standalone --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fakes.twilio",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, help="how long every request takes (default 0)"
    )
    parser.add_argument("--account-sid", default=ACCOUNT_SID)
    parser.add_argument("--auth-token", default=AUTH_TOKEN)
    parser.add_argument("--from", dest="from_number", default=FROM_NUMBER)
    args = parser.parse_args(argv)
    fake = FakeTwilio(
        port=args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        from_number=args.from_number,
        latency_ms=args.latency_ms,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fake:
        print(fake.url, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
