"""A real SMTP server (aiosmtpd) on 127.0.0.1 for tests, and for a daemon in another process.

It speaks real SMTP on a free loopback port and records every message it accepts. It can demand
AUTH, speak TLS (implicit, ``smtps``) or offer STARTTLS with a self-signed certificate made at test
time, refuse the next few RCPT or DATA commands with a reply of your choice (451, 550, ...), and be
stopped and started again on the same port ("the relay is down"). ``on_reply(command)``, when
set, runs on the server's loop just before it answers MAIL, RCPT or DATA (for DATA: after it
took the message), e.g. for a crash test to kill the client there.

In tests, take the ``smtp_server`` fixture (plain, no AUTH) or build others with
``make_smtp_server(username=..., password=..., tls="starttls")``; ``server.url`` is an
``AFTERCARE_SMTP_URL`` for it and ``server.messages`` what it received.

Standalone (prints its URL on the first line of stdout, then runs until SIGTERM or Ctrl-C)::

    python -m tests.fakes.smtp --port 8025 [--user U --password P] [--tls smtps|starttls]
                               [--spool DIR]   # each message as DIR/000001.eml + .json envelope
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import logging
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlencode

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
Tls = Literal["smtps", "starttls"]


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost; ``cert`` doubles as the CA file."""

    cert: Path
    key: Path

    @classmethod
    def create(cls, folder: Path) -> Certificate:
        """Made with the ``openssl`` command (the ``cryptography`` package is not a dependency)."""
        cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", str(key),
             "-out", str(cert), "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
            check=True,
            capture_output=True,
        )  # fmt: skip
        return cls(cert, key)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@dataclass(frozen=True)
class Received:
    """One accepted message: the envelope as the client gave it and the parsed message."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    raw: bytes
    login: str | None  # who authenticated, if anyone
    encrypted: bool  # the message travelled over TLS (smtps or after STARTTLS)
    client_port: int  # which of the client's connections it came on


class FakeSmtpServer:
    def __init__(
        self,
        *,
        port: int | None = None,
        username: str | None = None,
        password: str | None = None,
        tls: Tls | None = None,
        certificate: Certificate | None = None,
        auth_require_tls: bool = False,
        spool: Path | None = None,
    ) -> None:
        if tls and certificate is None:
            raise ValueError("tls needs a certificate")
        self.port = port or free_port()
        self.username, self.password = username, password
        self.tls, self.certificate = tls, certificate
        # aiosmtpd cannot tell that an smtps connection is encrypted (aio-libs/aiosmtpd#281), so
        # with implicit TLS it must not insist on TLS before AUTH.
        self.auth_require_tls = auth_require_tls and tls != "smtps"
        self.spool = spool
        self._messages: list[Received] = []
        self._received = 0  # ever, for spool file names (clear() does not reset it)
        self._failures: dict[str, list[str]] = {"RCPT": [], "DATA": []}
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self.on_reply: Callable[[str], None] | None = None

    # --- what tests look at ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """An ``AFTERCARE_SMTP_URL`` for this server (trusting its certificate, if it has one)."""
        scheme = "smtps" if self.tls == "smtps" else "smtp"
        credentials = ""
        if self.username is not None:
            credentials = f"{quote(self.username, safe='')}:{quote(self.password or '', safe='')}@"
        query: dict[str, str] = {}
        if self.tls == "starttls":
            query["starttls"] = "true"
        if self.tls and self.certificate is not None:
            query["cafile"] = str(self.certificate.cert)
        suffix = f"?{urlencode(query)}" if query else ""
        return f"{scheme}://{credentials}{HOST}:{self.port}{suffix}"

    @property
    def messages(self) -> list[Received]:
        """A snapshot of what was received so far, in arrival order."""
        with self._lock:
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    # --- switches --------------------------------------------------------------------------

    def fail_next(
        self, reply: int | str, times: int = 1, *, on: Literal["RCPT", "DATA"] = "RCPT"
    ) -> None:
        """Answer the next ``times`` RCPT (or DATA) commands with ``reply`` instead of 250.

        ``reply`` is a code (451: try again later; 550: refused for good) or a whole reply line.
        """
        line = reply if isinstance(reply, str) else _REPLIES.get(reply, f"{reply} Refused")
        with self._lock:
            self._failures[on].extend([line] * times)

    def start(self) -> FakeSmtpServer:
        """Listen (again, on the same port after :meth:`stop`)."""
        self._controller = self._build_controller()
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open connections: clients now see "connection refused"."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> FakeSmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the SMTP side (runs on the server's event loop thread) -----------------------------

    def _build_controller(self) -> Controller:
        options: dict[str, Any] = {"auth_require_tls": self.auth_require_tls}
        if self.username is not None:
            # AUTH is demanded at MAIL FROM by the handler: aiosmtpd's own `auth_required`
            # warns on every connection when TLS is not also required.
            options["authenticator"] = self._authenticate
        if self.tls == "smtps":
            assert self.certificate is not None
            options["ssl_context"] = self.certificate.server_context()
        elif self.tls == "starttls":
            assert self.certificate is not None
            options |= {"tls_context": self.certificate.server_context(), "require_starttls": True}
        # A Controller cannot be restarted (its loop is closed on stop), hence one per start.
        return Controller(_Handler(self), hostname=HOST, port=self.port, **options)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    def _take_failure(self, command: str) -> str | None:
        with self._lock:
            queue = self._failures[command]
            return queue.pop(0) if queue else None

    def _record(self, envelope: Envelope, session: Session) -> None:
        raw = envelope.original_content or b""
        # Parsed with plain newlines, so text parts read back exactly as the client wrote them.
        parsed = email.message_from_bytes(raw.replace(b"\r\n", b"\n"), policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data.login.decode() if session.authenticated else None
        received = Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=parsed,
            raw=raw,
            login=login,
            encrypted=session.ssl is not None or self.tls == "smtps",
            client_port=session.peer[1],
        )
        with self._lock:
            self._messages.append(received)
            self._received += 1
            number = self._received
        if self.spool is not None:
            _spool(self.spool, number, received)


_REPLIES = {
    421: "421 4.3.2 Service shutting down, try again later",
    450: "450 4.2.1 Mailbox busy, try again later",
    451: "451 4.3.0 Local error in processing, try again later",
    452: "452 4.3.1 Insufficient system storage",
    550: "550 5.1.1 Mailbox unavailable",
    552: "552 5.3.4 Message too big",
    554: "554 5.7.1 Rejected by policy",
}


class _Handler:
    def __init__(self, server: FakeSmtpServer) -> None:
        self.server = server

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if self.server.username is not None and not session.authenticated:
            return self._reply("MAIL", "530 5.7.0 Authentication required")
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return self._reply("MAIL", "250 OK")

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        failure = self.server._take_failure("RCPT")
        if failure is not None:
            return self._reply("RCPT", failure)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return self._reply("RCPT", "250 2.1.5 OK")

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self.server._take_failure("DATA")
        if failure is not None:
            return self._reply("DATA", failure)
        self.server._record(envelope, session)
        return self._reply("DATA", "250 2.0.0 OK: queued")

    def _reply(self, command: str, reply: str) -> str:
        if self.server.on_reply is not None:
            self.server.on_reply(command)
        return reply


def _spool(folder: Path, number: int, received: Received) -> None:
    stem = folder / f"{number:06d}"
    stem.with_suffix(".eml").write_bytes(received.raw)
    envelope = {"mail_from": received.mail_from, "rcpt_tos": list(received.rcpt_tos)}
    stem.with_suffix(".json").write_text(json.dumps(envelope), encoding="utf-8")


def free_port() -> int:
    """A port nobody listens on right now (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


# --- pytest fixtures -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return Certificate.create(tmp_path_factory.mktemp("smtp-tls"))


@pytest.fixture
def make_smtp_server(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., FakeSmtpServer]]:
    """Factory: a started server with the given options; ``tls=...`` brings its certificate."""
    started: list[FakeSmtpServer] = []

    def make(**options: Any) -> FakeSmtpServer:
        if options.get("tls") and "certificate" not in options:
            options["certificate"] = request.getfixturevalue("smtp_certificate")
        server = FakeSmtpServer(**options).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@pytest.fixture
def smtp_server(make_smtp_server: Callable[..., FakeSmtpServer]) -> FakeSmtpServer:
    """A plain SMTP server on loopback: no TLS, no AUTH."""
    return make_smtp_server()


# --- standalone ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.smtp", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--tls", choices=["smtps", "starttls"])
    parser.add_argument("--cert-dir", type=Path, help="where to write the self-signed cert")
    parser.add_argument("--spool", type=Path, help="write each message here as .eml + .json")
    args = parser.parse_args(argv)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd's chatter about itself
    certificate = None
    if args.tls:
        folder = args.cert_dir or Path.cwd()
        folder.mkdir(parents=True, exist_ok=True)
        certificate = Certificate.create(folder)
    if args.spool:
        args.spool.mkdir(parents=True, exist_ok=True)
    server = FakeSmtpServer(
        port=args.port or None,
        username=args.user,
        password=args.password,
        tls=args.tls,
        certificate=certificate,
        spool=args.spool,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        print(server.url, flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
