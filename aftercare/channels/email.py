"""The email channel: SMTP through smtplib, over a small pool of connections reused across
messages.

The dispatcher sends from many threads at once (as many as it keeps texts in flight), but a relay
takes a handful of connections from one client, and a mail goes out in milliseconds once the
connection is logged in: at most ``CONNECTIONS`` deliveries run at a time, each on an idle
logged-in connection when there is one.

Each message (composed in email_message.py) has a ``Message-ID`` made from its outbox row alone,
so a retry or a re-send after a crash carries the same id and mail clients show it once.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
import threading
from email.headerregistry import Address
from email.message import EmailMessage

from aftercare.channels.base import ChannelError, Outgoing, Receipt
from aftercare.channels.email_message import compose
from aftercare.config import Settings
from aftercare.errors import SettingsError
from aftercare.smtpurl import parse_smtp_url
from aftercare.statuses import ChannelName

CONNECTIONS = 4  # to the relay at once, at most; most relays allow 5-10 per client


class EmailChannel:
    name: str = ChannelName.EMAIL

    def __init__(self, settings: Settings) -> None:
        if not (settings.smtp_url and settings.email_from):
            raise SettingsError(
                "the email channel needs AFTERCARE_SMTP_URL and AFTERCARE_EMAIL_FROM"
            )
        try:
            self.target = parse_smtp_url(settings.smtp_url)
            self._tls = self.target.tls_context()  # one for all connections; read at start
        except ValueError as exc:
            raise SettingsError(f"AFTERCARE_SMTP_URL: {exc}") from None
        self.sender = settings.email_from
        self.sender_name = settings.clinic_name
        self._ehlo_name = socket.getfqdn()  # once: it may ask DNS
        self._turns = threading.BoundedSemaphore(CONNECTIONS)
        self._idle: list[smtplib.SMTP] = []  # logged in, between messages
        self._open: set[smtplib.SMTP] = set()
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> Receipt:
        try:
            mail = compose(message, Address(self.sender_name, addr_spec=self.sender))
        except ValueError:  # e.g. a line break in a header value; its text may hold the address
            raise ChannelError("cannot build this email", permanent=True, code="compose") from None
        try:
            with self._turns:
                self._deliver(mail, message.to)
        except (smtplib.SMTPException, OSError) as exc:
            # `from None`: smtplib's own errors quote the recipient's address.
            raise transaction_error(exc) from None
        return Receipt(provider_id=str(mail["Message-ID"]), provider_status="accepted")

    def find_sent(self, message: Outgoing) -> Receipt | None:
        return None  # SMTP cannot be asked; dispatch re-sends with the same Message-ID

    def close(self) -> None:
        with self._lock:
            connections, self._open, self._idle = self._open, set(), []
        for connection in connections:
            _hang_up(connection)

    def _deliver(self, mail: EmailMessage, to: str) -> None:
        with self._lock:
            pooled = self._idle.pop() if self._idle else None
        if pooled is not None:
            try:
                pooled.send_message(mail, self.sender, [to])
                self._release(pooled)
                return
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                # The relay dropped an idle connection. If it went down after accepting the
                # DATA, the re-send below carries the same Message-ID, so the patient sees one.
                self._discard(pooled)
            except smtplib.SMTPResponseException as exc:
                self._discard(pooled)
                if exc.smtp_code != 421:  # 421: this connection is done, not the relay
                    raise
            except BaseException:
                self._discard(pooled)
                raise
        connection = self._connect()
        try:
            connection.send_message(mail, self.sender, [to])
        except BaseException:
            self._discard(connection)
            raise
        self._release(connection)

    def _release(self, connection: smtplib.SMTP) -> None:
        """Back to the idle ones, for the next message (unless the channel closed meanwhile)."""
        with self._lock:
            if connection in self._open:
                self._idle.append(connection)

    def _connect(self) -> smtplib.SMTP:
        """A logged-in connection, or a transient ChannelError: whatever goes wrong before MAIL
        FROM is about the relay or our settings, never about the message."""
        try:
            connection = self._open_connection()
        except (smtplib.SMTPException, OSError) as exc:
            raise session_error(exc) from None
        with self._lock:
            self._open.add(connection)
        return connection

    def _open_connection(self) -> smtplib.SMTP:
        target = self.target
        connection: smtplib.SMTP
        if target.implicit_tls:
            connection = smtplib.SMTP_SSL(
                target.host,
                target.port,
                local_hostname=self._ehlo_name,
                timeout=target.timeout,
                context=self._tls,
            )
        else:
            connection = smtplib.SMTP(
                target.host, target.port, local_hostname=self._ehlo_name, timeout=target.timeout
            )
        try:
            if target.starttls:
                connection.starttls(context=self._tls)
            if target.username is not None:
                connection.login(target.username, target.password or "")
        except BaseException:
            _hang_up(connection)
            raise
        return connection

    def _discard(self, connection: smtplib.SMTP) -> None:
        with self._lock:
            self._open.discard(connection)
        _hang_up(connection)


def _hang_up(connection: smtplib.SMTP) -> None:
    try:
        connection.quit()
    except (smtplib.SMTPException, OSError):
        connection.close()


# --- errors --------------------------------------------------------------------------------
# Permanent means "this message can never be delivered as it is": only a 5xx reply to its own
# MAIL FROM, RCPT TO or DATA. Everything else (4xx, timeouts, refused connections, TLS, AUTH) is
# transient and retried with backoff until the message expires.
#
# A refused login (535) is transient on purpose: it is the same for every message, and the fix
# (new credentials in AFTERCARE_SMTP_URL) is the operator's. Failing each message for good at
# once would throw away every patient's reminders for the hours it takes someone to notice;
# retrying keeps them until they expire, and the code "SMTP 535" on the rows says what is wrong.
# The same goes for the other RFC 4954 replies about our settings, wherever they come: 530 (log in
# first), 534 (mechanism too weak), 538 (encryption required).
_SETTINGS_REPLIES = {530, 534, 535, 538}

_ENHANCED = re.compile(rb"\s*([245]\.\d{1,3}\.\d{1,3})")


def transaction_error(exc: Exception) -> ChannelError:
    """Classify what went wrong while sending one message on a working connection."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()), (-1, b""))
        return _reply_error("SMTP relay refused the recipient", code, reply)
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return _reply_error("SMTP relay refused the sender", exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPResponseException):
        return _reply_error("SMTP relay refused the message", exc.smtp_code, exc.smtp_error)
    if isinstance(exc, smtplib.SMTPNotSupportedError):  # an address needs SMTPUTF8
        return ChannelError(
            "SMTP relay cannot take this address (no SMTPUTF8)", permanent=True, code="SMTPUTF8"
        )
    return session_error(exc)


def session_error(exc: Exception) -> ChannelError:
    """Classify a failure to reach, greet, encrypt or log in to the relay: always transient."""
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        what = f"SMTP relay refused the login in AFTERCARE_SMTP_URL ({exc.smtp_code})"
        return ChannelError(what, permanent=False, code=f"SMTP {exc.smtp_code}")
    if isinstance(exc, smtplib.SMTPResponseException):
        what = f"SMTP relay refused the session ({exc.smtp_code})"
        return ChannelError(what, permanent=False, code=f"SMTP {exc.smtp_code}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return ChannelError(f"SMTP relay: {exc}", permanent=False, code="SMTP unsupported")
    if isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError):
        # smtplib reports a reply that never came as "disconnected"; the timeout is the cause.
        return ChannelError("SMTP relay timed out", permanent=False, code="timeout")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return ChannelError("SMTP relay closed the connection", permanent=False, code="SMTP closed")
    if isinstance(exc, ssl.SSLError):
        what = f"TLS with the SMTP relay failed ({exc.reason or type(exc).__name__})"
        return ChannelError(what, permanent=False, code="TLS")
    reason = exc.strerror if isinstance(exc, OSError) else None
    what = f"cannot reach the SMTP relay ({reason or type(exc).__name__})"
    return ChannelError(what, permanent=False, code="connection")


def _reply_error(what: str, code: int, reply: bytes | str) -> ChannelError:
    # The reply's text often quotes the address, so only its enhanced status code is kept.
    raw = reply.encode(errors="replace") if isinstance(reply, str) else reply
    enhanced = _ENHANCED.match(raw)
    detail = f"{code} {enhanced.group(1).decode()}" if enhanced else str(code)
    permanent = 500 <= code < 600 and code not in _SETTINGS_REPLIES
    return ChannelError(f"{what}: {detail}", permanent=permanent, code=f"SMTP {code}")
