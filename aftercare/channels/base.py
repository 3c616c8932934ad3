"""The contract between dispatch and the channels.

A channel turns one :class:`Outgoing` into a :class:`Receipt` or raises :class:`ChannelError`,
which says whether trying again could help (``permanent``). Vendor error codes are mapped to that
inside the channel that knows the vendor; dispatch only reads the flags.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str  # e.g. "text/calendar; method=PUBLISH"
    data: bytes


@dataclass(frozen=True)
class Outgoing:
    """One rendered message, ready for a channel. Holds patient data: never log it whole."""

    message_id: int  # the outbox row; stable across retries and restarts
    channel: str  # "sms" | "email" | "console"
    to: str  # E.164 phone number or email address
    text: str  # SMS body, or the plain-text email body
    language: str
    timezone: str = "UTC"  # the patient's IANA zone (calendar attachments, console output)
    subject: str | None = None  # email only
    unsubscribe_url: str | None = None  # email only: RFC 8058 one-click URL
    attachments: tuple[Attachment, ...] = ()
    status_callback: str | None = None  # SMS only: where Twilio posts delivery receipts
    # When the first attempt was claimed: reconciliation looks for provider records after it.
    first_attempt_at: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    provider_id: str | None
    # What the provider said it did; dispatch records the message as "sent" either way.
    provider_status: str | None = None


class ChannelError(Exception):
    """A send that did not happen.

    ``permanent``: trying again cannot help (bad number, opted out, 5xx SMTP reply).
    ``opt_out``: the provider says the recipient has opted out (Twilio 21610): suppress them.
    ``retry_after``: seconds the provider asked us to wait (HTTP Retry-After), if any.
    ``code``: the provider's code ("21211", "429", "SMTP 550"), recorded on the message.
    The message must not contain the recipient's address or the body.
    """

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        code: str | None = None,
        retry_after: float | None = None,
        opt_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.code = code
        self.retry_after = retry_after
        self.opt_out = opt_out


class Channel(Protocol):
    name: str

    def send(self, message: Outgoing) -> Receipt:
        """Deliver ``message`` or raise ChannelError. Safe to call from several threads."""
        ...

    def find_sent(self, message: Outgoing) -> Receipt | None:
        """After a crash: the provider's record of ``message`` if it was already accepted.

        SMS looks the message up in the provider's list (To, date sent, body). A channel that
        cannot look things up returns None, and the message is sent again (email re-sends with
        the same Message-ID, so mail clients show it once).
        """
        ...

    def close(self) -> None: ...
