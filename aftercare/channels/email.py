"""The email channel: SMTP through smtplib, one reused connection per sending thread.

``AFTERCARE_SMTP_URL`` names the relay::

    smtp://[user:pass@]host[:port]            plain SMTP (port 25)
    smtp://user:pass@host:587?starttls=true   upgraded with STARTTLS before AUTH (never falls
                                              back to plain text if the relay does not offer it)
    smtps://[user:pass@]host[:port]           implicit TLS (port 465)

User and password are percent-decoded (write ``@`` as ``%40``). TLS always verifies the relay's
certificate and host name. Options in the query string:

``cafile=/path/ca.pem``  trust only the CA certificates in this file (a relay with a private or
                         self-signed certificate) instead of the system's store
``timeout=SECONDS``      socket timeout for each connect and reply (default 30)

Each message has a ``Message-ID`` made from its outbox row alone, so a retry or a re-send after a
crash carries the same id and mail clients show it once.
"""

from __future__ import annotations

import email.policy
import html
import re
import smtplib
import socket
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from aftercare.channels.base import ChannelError, Outgoing, Receipt
from aftercare.config import Settings
from aftercare.errors import SettingsError

DEFAULT_TIMEOUT = 30.0


# --- where to send -------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def tls_context(self) -> ssl.SSLContext | None:
        """Verifies the certificate and host name, against ``cafile`` or the system's CAs."""
        if not (self.implicit_tls or self.starttls):
            return None
        try:
            return ssl.create_default_context(cafile=self.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load cafile {self.cafile!r} ({exc})") from None


def parse_smtp_url(raw: str) -> SmtpTarget:
    """Read an ``AFTERCARE_SMTP_URL``; raises ValueError (never quoting the password)."""
    parts = urlsplit(raw)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ValueError("expected smtp://[user:pass@]host[:port] or smtps://...")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    unknown = set(query) - {"starttls", "cafile", "timeout"}
    if unknown:
        raise ValueError(
            f"unknown option {sorted(unknown)[0]!r} (known: starttls, cafile, timeout)"
        )
    implicit = parts.scheme == "smtps"
    starttls = _flag(query.get("starttls", "false"))
    if implicit and starttls:
        raise ValueError("smtps:// is already encrypted; starttls=true is for smtp://")
    if "cafile" in query and not (implicit or starttls):
        raise ValueError("cafile is for TLS: use smtps:// or add starttls=true")
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or (465 if implicit else 587 if starttls else 25),
        implicit_tls=implicit,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        cafile=query.get("cafile"),
        timeout=_seconds(query.get("timeout")),
    )


def _flag(raw: str) -> bool:
    if raw.lower() in {"true", "1", "yes"}:
        return True
    if raw.lower() in {"false", "0", "no"}:
        return False
    raise ValueError(f"starttls must be true or false, got {raw!r}")


def _seconds(raw: str | None) -> float:
    if raw is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"timeout must be a number of seconds, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"timeout must be greater than 0, got {raw!r}")
    return value


# --- the channel ---------------------------------------------------------------------------


class EmailChannel:
    name = "email"

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
        self._local = threading.local()
        self._open: set[smtplib.SMTP] = set()
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> Receipt:
        try:
            mail = compose(message, Address(self.sender_name, addr_spec=self.sender))
        except ValueError:  # e.g. a line break in a header value; its text may hold the address
            raise ChannelError("cannot build this email", permanent=True, code="compose") from None
        try:
            self._deliver(mail, message.to)
        except (smtplib.SMTPException, OSError) as exc:
            # `from None`: smtplib's own errors quote the recipient's address.
            raise transaction_error(exc) from None
        return Receipt(provider_id=str(mail["Message-ID"]), provider_status="accepted")

    def find_sent(self, message: Outgoing) -> Receipt | None:
        return None  # SMTP cannot be asked; dispatch re-sends with the same Message-ID

    def close(self) -> None:
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            _hang_up(connection)

    def _deliver(self, mail: EmailMessage, to: str) -> None:
        pooled: smtplib.SMTP | None = getattr(self._local, "connection", None)
        if pooled is not None:
            try:
                pooled.send_message(mail, self.sender, [to])
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
        self._local.connection = connection

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
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None
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


# --- the message ---------------------------------------------------------------------------


class _OneLineHeader(UnstructuredHeader, BaseHeader):
    """Never folded: Python would turn a long URL into an RFC 2047 encoded word, which no mail
    client reads as a URL (and folding List-Unsubscribe breaks some DKIM signers)."""

    def fold(self, *, policy: Any) -> str:
        if not str(self).isascii():
            return super().fold(policy=policy)
        return f"{self.name}: {self}{policy.linesep}"


_headers = HeaderRegistry()
_headers.map_to_type("list-unsubscribe", _OneLineHeader)
_POLICY = email.policy.SMTP.clone(header_factory=_headers)


def message_id(outbox_id: int, sender: str) -> str:
    """The same for every attempt at one outbox row, so clients deduplicate re-sends."""
    return f"<aftercare.{outbox_id}@{sender.rpartition('@')[2]}>"


def compose(message: Outgoing, sender: Address, sent_at: datetime | None = None) -> EmailMessage:
    """The whole email: text and HTML alternatives, then any attachments (multipart/mixed)."""
    mail = EmailMessage(policy=_POLICY)
    mail["From"] = sender
    mail["To"] = message.to
    mail["Subject"] = message.subject or ""
    mail["Date"] = format_datetime(sent_at or datetime.now(UTC))
    mail["Message-ID"] = message_id(message.message_id, sender.addr_spec)
    mail["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    if message.unsubscribe_url:
        mail["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"  # RFC 8058 one-click
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    footer = _footer(message.language, message.unsubscribe_url)
    # Quoted-printable keeps accented text 7-bit clean for any relay.
    mail.set_content(plain_text(message.text, footer), cte="quoted-printable")
    page = html_page(message.text, message.subject or "", message.language, footer)
    mail.add_alternative(page, subtype="html", cte="quoted-printable")
    for attachment in message.attachments:
        content_type = EmailMessage()
        content_type["Content-Type"] = attachment.content_type
        mail.add_attachment(
            attachment.data,
            maintype=content_type.get_content_maintype(),
            subtype=content_type.get_content_subtype(),
            filename=attachment.filename,
            params=dict(content_type["Content-Type"].params),
        )
    # Last: building the body moves or drops the Content-* headers set before it.
    mail["Content-Language"] = message.language
    return mail


_FOOTERS = {
    "en": ("To stop these email reminders, open this link:", "Stop these email reminders"),
    "es": (
        "Para dejar de recibir estos recordatorios por correo, abra este enlace:",
        "Dejar de recibir estos recordatorios por correo",
    ),
}


@dataclass(frozen=True)
class _Footer:
    text: str
    link_text: str
    url: str


def _footer(language: str, url: str | None) -> _Footer | None:
    if not url:
        return None
    text, link = _FOOTERS.get(language.split("-")[0].lower(), _FOOTERS["en"])
    return _Footer(text, link, url)


def plain_text(text: str, footer: _Footer | None) -> str:
    body = text.strip() + "\n"
    if footer is None:
        return body
    return f"{body}\n-- \n{footer.text}\n{footer.url}\n"


# A line this long followed by another was wrapped by the template's author: the HTML joins them
# with a space and lets the reader's screen wrap. Shorter lines (signatures) keep their break.
_WRAPPED = 60
_BULLET = re.compile(r"^\s*[-*•]\s+(.*)$")
_URL = re.compile(r"https?://[^\s<>\"']+")


def html_page(text: str, title: str, language: str, footer: _Footer | None) -> str:
    """The plain text as HTML: paragraphs, "- " lines as a list, clickable links, all escaped."""
    blocks = [_block(part) for part in re.split(r"\n\s*\n", text.strip()) if part.strip()]
    if footer is not None:
        link = f'<a href="{html.escape(footer.url)}">{html.escape(footer.link_text)}</a>'
        blocks.append(f'<hr>\n<p style="font-size:13px;color:#555">{link}</p>')
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(language)}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n"
        '<body style="font-family:Arial,sans-serif;font-size:16px;line-height:1.5;color:#222">\n'
        + "\n".join(blocks)
        + "\n</body>\n</html>\n"
    )


def _block(paragraph: str) -> str:
    """One paragraph: runs of bullet lines (with their indented continuations) become lists."""
    parts: list[tuple[str, list[str]]] = []  # ("li" | "p", lines)
    for line in paragraph.splitlines():
        bullet = _BULLET.match(line)
        if bullet:
            parts.append(("li", [bullet.group(1)]))
        elif parts and (parts[-1][0] == "p" or line[:1].isspace()):
            parts[-1][1].append(line.strip())
        else:
            parts.append(("p", [line.strip()]))
    out: list[str] = []
    for index, (kind, lines) in enumerate(parts):
        if kind == "p":
            out.append(f"<p>{_inline(lines)}</p>")
            continue
        first = index == 0 or parts[index - 1][0] != "li"
        last = index == len(parts) - 1 or parts[index + 1][0] != "li"
        out.append(
            ("<ul>\n" if first else "") + f"<li>{_inline(lines)}</li>" + ("\n</ul>" if last else "")
        )
    return "\n".join(out)


def _inline(lines: list[str]) -> str:
    html_lines = [_linkify(line) for line in lines]
    joined = html_lines[0]
    for previous, line in zip(lines[:-1], html_lines[1:], strict=True):
        joined += (" " if len(previous) >= _WRAPPED else "<br>\n") + line
    return joined


def _linkify(line: str) -> str:
    out, position = [], 0
    for match in _URL.finditer(line):
        url = match.group().rstrip(".,;:!?)")
        out.append(html.escape(line[position : match.start()]))
        out.append(f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
        position = match.start() + len(url)
    out.append(html.escape(line[position:]))
    return "".join(out)
