"""The SMS channel: Twilio's Messages API through the official twilio SDK.

The sender is ``TWILIO_MESSAGING_SERVICE_SID`` when set (Twilio picks a number from the service's
pool and applies its opt-out handling), otherwise ``TWILIO_FROM_NUMBER``.

Each sending thread has its own SDK client and HTTP session, which keeps its connection to Twilio
alive between messages (its transport, in twilio_http.py, also keeps the last response's headers
for a 429's ``Retry-After``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from twilio.rest import Client

from aftercare.channels.base import ChannelError, Outgoing, Receipt
from aftercare.channels.ratelimit import TokenBucket
from aftercare.channels.twilio_http import SDK_ERRORS, TwilioTransport, classify
from aftercare.config import Settings
from aftercare.errors import SettingsError
from aftercare.statuses import ChannelName

DEFAULT_TIMEOUT = 30.0  # seconds, for connecting and for each read
# Our clock and Twilio's may disagree; records this much older than the first attempt still count.
CLOCK_SKEW = timedelta(minutes=10)
LOOKUP_LIMIT = 1000  # texts to one number looked at by find_sent, newest first


class SmsChannel:
    name: str = ChannelName.SMS

    def __init__(
        self,
        settings: Settings,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not (settings.twilio_account_sid and settings.twilio_auth_token):
            raise SettingsError("the sms channel needs TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN")
        if not (settings.twilio_from_number or settings.twilio_messaging_service_sid):
            raise SettingsError(
                "the sms channel needs TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"
            )
        self.account_sid = settings.twilio_account_sid
        self._auth_token = settings.twilio_auth_token
        self.api_url = settings.twilio_api_url
        self.service_sid = settings.twilio_messaging_service_sid
        self.from_number = None if self.service_sid else settings.twilio_from_number
        self.timeout = timeout
        self.limiter: TokenBucket | None = None
        if settings.sms_rate:
            self.limiter = TokenBucket(settings.sms_rate, sleep=sleep, clock=clock)
        self._now = now
        self._local = threading.local()
        self._transports: list[TwilioTransport] = []
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> Receipt:
        """Send ``message`` now. Whether an earlier attempt may already have gone out is the
        dispatcher's question (it calls :meth:`find_sent` first for every retry), not this
        method's: one place looks, so a retry makes one list call."""
        if self.limiter is not None:
            self.limiter.acquire()
        fields: dict[str, Any] = {"to": message.to, "body": message.text, **self._sender()}
        if message.status_callback:
            fields["status_callback"] = message.status_callback
        try:
            record = self._client().messages.create(**fields)
        except SDK_ERRORS as exc:
            raise self._error(exc) from None  # `from None`: the SDK's own text repeats the number
        return Receipt(provider_id=record.sid, provider_status=record.status)

    def find_sent(self, message: Outgoing) -> Receipt | None:
        """Twilio's record of ``message``: to the same number, from our sender, with the same
        body, created since its first attempt.

        Twilio's list is asked by number only, not by DateSent: a text still queued at Twilio
        has no date_sent yet, and those are just the ones a crash right after sending leaves.
        One number gets a few dozen texts from a timeline, so the list stays short.
        """
        first = message.first_attempt_at or self._now() - timedelta(days=1)
        since = (first if first.tzinfo else first.replace(tzinfo=UTC)) - CLOCK_SKEW
        sender = {"from_": self.from_number} if self.from_number else {}
        try:
            records = self._client().messages.stream(
                to=message.to, **sender, page_size=100, limit=LOOKUP_LIMIT
            )
            found = next((r for r in records if self._is_ours(r, message.text, since)), None)
        except SDK_ERRORS as exc:
            raise self._error(exc) from None
        if found is None:
            return None
        return Receipt(provider_id=found.sid, provider_status=found.status)

    def close(self) -> None:
        with self._lock:
            transports, self._transports = self._transports, []
        for transport in transports:
            transport.close()

    # --- helpers -------------------------------------------------------------------------------

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            transport = TwilioTransport(self.api_url, self.timeout)
            # A non-empty `environment` keeps the SDK from reading os.environ (TWILIO_EDGE and
            # TWILIO_REGION there would move requests to other hosts).
            environment = {"TWILIO_ACCOUNT_SID": self.account_sid}
            client = Client(
                self.account_sid, self._auth_token, http_client=transport, environment=environment
            )
            self._local.client, self._local.transport = client, transport
            with self._lock:
                self._transports.append(transport)
        return client

    def _sender(self) -> dict[str, str]:
        if self.service_sid:
            return {"messaging_service_sid": self.service_sid}
        assert self.from_number is not None
        return {"from_": self.from_number}

    def _is_ours(self, record: Any, body: str, since: datetime) -> bool:
        created = record.date_created
        if record.body != body or not isinstance(created, datetime) or created < since:
            return False
        if self.service_sid:
            return bool(record.messaging_service_sid == self.service_sid)
        return bool(record.from_ == self.from_number)

    def _error(self, exc: Exception) -> ChannelError:
        transport: TwilioTransport | None = getattr(self._local, "transport", None)
        return classify(exc, transport.last_headers if transport is not None else {})
