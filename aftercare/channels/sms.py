"""The SMS channel: Twilio's Messages API through the official twilio SDK.

``AFTERCARE_TWILIO_API_URL`` (default ``https://api.twilio.com``) is applied by the SDK's own
extension point, a custom ``http_client``: :class:`TwilioTransport` rewrites the API's prefix in
every URL the SDK builds (paging links included), so tests and proxies get the real SDK's requests.

The sender is ``TWILIO_MESSAGING_SERVICE_SID`` when set (Twilio picks a number from the service's
pool and applies its opt-out handling), otherwise ``TWILIO_FROM_NUMBER``.

Each sending thread has its own SDK client and HTTP session, which keeps its connection to Twilio
alive between messages; the SDK's exceptions drop the response headers, so the thread's own
transport is where a 429's ``Retry-After`` is read.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import urllib3.exceptions
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from aftercare.channels.base import ChannelError, Outgoing, Receipt
from aftercare.config import Settings
from aftercare.errors import SettingsError

TWILIO_API_URL = "https://api.twilio.com"
DEFAULT_TIMEOUT = 30.0  # seconds, for connecting and for each read
# Our clock and Twilio's may disagree; records this much older than the first attempt still count.
CLOCK_SKEW = timedelta(minutes=10)
LOOKUP_LIMIT = 1000  # texts to one number looked at by find_sent, newest first
# Message ids whose last attempt may have reached Twilio without us knowing (bounded memory).
_UNSURE_LIMIT = 10_000


# --- the SDK's HTTP client ---------------------------------------------------------------------


class TwilioTransport(TwilioHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's requests-based client, sending to ``base_url`` instead of api.twilio.com.

    Not for sharing between threads: it remembers the last response it received.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self.last_headers: Mapping[str, str] = {}  # of the last response (case-insensitive)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.last_headers = {}
        response = super().request(method, self._rewrite(url), *args, **kwargs)
        self.last_headers = response.headers or {}
        return response

    def _rewrite(self, url: str) -> str:
        if not url.startswith(TWILIO_API_URL + "/"):
            # Never let a request slip past AFTERCARE_TWILIO_API_URL (to real Twilio from a test).
            raise ValueError(f"unexpected Twilio URL {url.split('?')[0]!r}")
        return self.base_url + url[len(TWILIO_API_URL) :]

    # The SDK logs every request's query string (the patient's number, in list filters) at INFO.
    def log_request(self, kwargs: Any) -> None:
        return None

    def log_response(self, status_code: int, response: Any) -> None:
        return None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


# --- the channel -------------------------------------------------------------------------------


class SmsChannel:
    name = "sms"

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
        self._unsure: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> Receipt:
        if self._is_unsure(message.message_id):
            found = self.find_sent(message)
            if found is not None:
                self._settle(message.message_id)
                return found
        if self.limiter is not None:
            self.limiter.acquire()
        fields: dict[str, Any] = {"to": message.to, "body": message.text, **self._sender()}
        if message.status_callback:
            fields["status_callback"] = message.status_callback
        try:
            record = self._client().messages.create(**fields)
        except _SDK_ERRORS as exc:
            error = self._error(exc)
            if not _never_sent(exc):
                self._mark_unsure(message.message_id)
            raise error from None  # `from None`: the SDK's own text repeats the number
        self._settle(message.message_id)
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
        except _SDK_ERRORS as exc:
            self._mark_unsure(message.message_id)  # still unknown: the next send looks again
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

    # A create can fail after its request reached Twilio (a read timeout, a lost connection, a
    # 5xx from a proxy): the text may have gone out. The next send of that message looks in
    # Twilio's list first, so a retry from this process never texts the patient twice.
    def _mark_unsure(self, message_id: int) -> None:
        with self._lock:
            self._unsure[message_id] = None
            self._unsure.move_to_end(message_id)
            while len(self._unsure) > _UNSURE_LIMIT:
                self._unsure.popitem(last=False)

    def _is_unsure(self, message_id: int) -> bool:
        with self._lock:
            return message_id in self._unsure

    def _settle(self, message_id: int) -> None:
        with self._lock:
            self._unsure.pop(message_id, None)


# --- errors ------------------------------------------------------------------------------------
# Permanent: this message can never go out as it is. Transient: it may later. Errors about our
# own account and settings are transient on purpose, as in the email channel: they are the same
# for every message, and the fix is the operator's. Failing each message for good would throw
# away every patient's reminders in the hours before someone notices; retrying keeps them until
# they expire, and the code on the rows ("20003") says what is wrong.

# code -> (permanent, what happened)
TWILIO_CODES: dict[int, tuple[bool, str]] = {
    21211: (True, "invalid 'To' number"),
    21408: (True, "sending to this region is not enabled on the account"),
    21602: (True, "empty message body"),
    21606: (True, "the sender cannot send to this destination"),
    21610: (True, "recipient has opted out"),
    21612: (True, "Twilio cannot route to this number"),
    21614: (True, "'To' number cannot receive SMS"),
    21617: (True, "message body too long"),
    30004: (True, "message blocked by the recipient"),
    30005: (True, "unknown destination handset"),
    30006: (True, "landline or unreachable carrier"),
    30007: (True, "filtered by the carrier"),
    20003: (False, "Twilio refused the credentials (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)"),
    20404: (False, "Twilio does not know this account or resource (TWILIO_ACCOUNT_SID)"),
    20429: (False, "Twilio asked us to slow down"),
    21212: (False, "TWILIO_FROM_NUMBER is not a valid number"),
    21611: (False, "the sender's queue at Twilio is full"),
    30001: (False, "queue overflow at Twilio"),
    30003: (False, "handset unreachable"),
}
OPT_OUT_CODES = {21610}
# What the SDK raises about talking to Twilio; anything else is a bug and propagates.
_SDK_ERRORS = (TwilioException, requests.RequestException, json.JSONDecodeError)
# Without a known code, the HTTP status decides: these are about us or about Twilio, not about
# the message.
_TRANSIENT_STATUSES = {401, 403, 404, 408, 409, 425, 429}


def classify(exc: Exception, headers: Mapping[str, str] | None = None) -> ChannelError:
    """The ChannelError for one of ``_SDK_ERRORS``; ``headers``: the response's, if any."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        return _api_error(int(exc.status), _int(exc.code), headers or {})
    page: Any = exc.args[1] if isinstance(exc, TwilioException) and len(exc.args) > 1 else None
    if hasattr(page, "status_code"):  # a list page's error: the SDK keeps only the response
        return _api_error(int(page.status_code), _body_code(page.text), headers or {})
    if isinstance(exc, requests.Timeout):
        return ChannelError("Twilio did not answer in time", permanent=False, code="timeout")
    if isinstance(exc, requests.RequestException):
        what = f"connection to Twilio failed ({_reason(exc)})"
        return ChannelError(what, permanent=False, code="connection")
    # A 2xx answer that is not Twilio's JSON (a proxy's page, say), or not the JSON expected.
    return ChannelError("unreadable answer from Twilio", permanent=False, code="response")


def _api_error(status: int, code: int | None, headers: Mapping[str, str]) -> ChannelError:
    retry_after = retry_after_seconds(headers.get("Retry-After"))
    known = TWILIO_CODES.get(code) if code is not None else None
    if known is not None:
        permanent, what = known
    else:
        permanent = 400 <= status < 500 and status not in _TRANSIENT_STATUSES
        what = "Twilio refused the message" if permanent else "Twilio could not take it now"
    label = str(code if code is not None else status)
    return ChannelError(
        f"{what} (HTTP {status}, code {label})",
        permanent=permanent,
        code=label,
        retry_after=retry_after,
        opt_out=code in OPT_OUT_CODES,
    )


def retry_after_seconds(raw: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: either form of RFC 9110 (seconds, or an HTTP date)."""
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _body_code(text: str) -> int | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return _int(body.get("code")) if isinstance(body, dict) else None


def _int(code: object) -> int | None:
    try:
        return int(str(code))
    except ValueError:
        return None


def _never_sent(exc: Exception) -> bool:
    """The request cannot have reached Twilio (or Twilio refused it on purpose)."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        return int(exc.status) < 500  # Twilio answered; a 4xx is a decision, not an accident
    return isinstance(exc, requests.ConnectTimeout) or isinstance(
        _root(exc), urllib3.exceptions.NewConnectionError
    )


def _root(exc: Exception) -> BaseException:
    """What urllib3 said under requests' wrapper (a MaxRetryError and its reason)."""
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    reason = getattr(inner, "reason", None)
    return reason if isinstance(reason, BaseException) else inner


def _reason(exc: Exception) -> str:
    """A short cause, without the URL or anything a proxy might have said."""
    root = _root(exc)
    if isinstance(root, urllib3.exceptions.NewConnectionError):
        return "refused or unreachable"
    if isinstance(root, urllib3.exceptions.SSLError):
        return "TLS"
    if isinstance(root, urllib3.exceptions.ProtocolError | ConnectionError):
        return "connection closed"
    return type(root).__name__


# --- rate limit --------------------------------------------------------------------------------


class TokenBucket:
    """At most ``rate`` acquisitions a second on average, with bursts of up to ``burst``
    (default: one second's worth, at least one). ``acquire`` blocks until its turn; threads
    take turns in the order they asked."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be greater than 0, got {rate}")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, rate)
        self._sleep, self._clock = sleep, clock
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take one token, waiting for it if need be; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._updated, 0.0)
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._updated = now
            self._tokens -= 1  # reserved now, even if it only becomes ours after the wait
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait
