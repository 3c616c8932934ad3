"""``AFTERCARE_SMTP_URL``: where the email channel sends, read into a :class:`SmtpTarget`.

The URL names the relay::

    smtp://[user:pass@]host[:port]            plain SMTP (port 25)
    smtp://user:pass@host:587?starttls=true   upgraded with STARTTLS before AUTH (never falls
                                              back to plain text if the relay does not offer it)
    smtps://[user:pass@]host[:port]           implicit TLS (port 465)

User and password are percent-decoded (write ``@`` as ``%40``). TLS always verifies the relay's
certificate and host name. Options in the query string:

``cafile=/path/ca.pem``  trust only the CA certificates in this file (a relay with a private or
                         self-signed certificate) instead of the system's store
``timeout=SECONDS``      socket timeout for each connect and reply (default 30)
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_TIMEOUT = 30.0


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
