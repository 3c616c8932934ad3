"""The SMS channel: Twilio's Messages API through the official twilio SDK.

``AFTERCARE_TWILIO_API_URL`` (default ``https://api.twilio.com``) is applied by the SDK's own
extension point, a custom ``http_client``, which rewrites the API's prefix in every URL the SDK
builds (paging links included), so tests and proxies get the real SDK's requests.

The sender is ``TWILIO_MESSAGING_SERVICE_SID`` when set (Twilio picks a number from the service's
pool and applies its opt-out handling), otherwise ``TWILIO_FROM_NUMBER``.

Sends come from many threads at once (``AFTERCARE_SMS_CONCURRENCY``); their requests run on one
event loop with one pool of keep-alive connections (twilio_loop.py says why). Twilio answers 429
(20429) when an account has too many requests in flight: :class:`Throttle` then halves how many
this channel lets through and grows it back one at a time, and the refused text is tried again
after the wait Twilio asked for, a few times, before it goes back to the outbox as a retry.
``AFTERCARE_SMS_RATE`` is held by :class:`RateLimit`, whatever the concurrency.
"""

from __future__ import annotations

import json
import math
import ssl
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient

from aftercare.channels.base import ChannelError, Outgoing, Receipt
from aftercare.channels.twilio_loop import CallFailed, TwilioLoop
from aftercare.config import Settings
from aftercare.errors import SettingsError

T = TypeVar("T")

TWILIO_API_URL = "https://api.twilio.com"
DEFAULT_TIMEOUT = 30.0  # seconds, for connecting and for each read
# Our clock and Twilio's may disagree; records this much older than the first attempt still count.
CLOCK_SKEW = timedelta(minutes=10)
LOOKUP_LIMIT = 1000  # texts to one number looked at by find_sent, newest first
# Message ids whose last attempt may have reached Twilio without us knowing (bounded memory).
_UNSURE_LIMIT = 10_000
# A text Twilio refused with 429 is tried again this many times (after the wait it asked for, or
# THROTTLED_WAIT) before it goes back to the outbox as a retry.
THROTTLED_TRIES = 3
THROTTLED_WAIT = 1.0  # seconds, when Twilio did not say (Retry-After)
THROTTLED_LONGEST_WAIT = 30.0
THROTTLED_CODES = {"429", "20429"}


# --- the SDK's HTTP client ---------------------------------------------------------------------


class TwilioTransport(TwilioHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's requests-based client, sending to ``base_url`` instead of api.twilio.com: for
    one-off calls (``aftercare doctor``); the channel sends through :class:`TwilioLoop`.

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
        self.service_sid = settings.twilio_messaging_service_sid
        self.from_number = None if self.service_sid else settings.twilio_from_number
        self.limiter: RateLimit | None = None
        if settings.sms_rate:
            self.limiter = RateLimit(settings.sms_rate, sleep=sleep, clock=clock)
        self.throttle = Throttle(settings.sms_concurrency)
        self._sleep, self._now = sleep, now
        self._twilio = TwilioLoop(
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_api_url,
            timeout,
            connections=settings.sms_concurrency,
        )
        self._unsure: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    def send(self, message: Outgoing) -> Receipt:
        if self._is_unsure(message.message_id):
            found = self.find_sent(message)
            if found is not None:
                self._settle(message.message_id)
                return found
        fields: dict[str, Any] = {"to": message.to, "body": message.text, **self._sender()}
        if message.status_callback:
            fields["status_callback"] = message.status_callback
        for tries_left in range(THROTTLED_TRIES, -1, -1):
            try:
                with self.throttle:
                    if self.limiter is not None:
                        self.limiter.acquire()
                    record = self._call(self._twilio.client.messages.create_async(**fields))
            except CallFailed as failed:
                error = classify(failed.error, failed.headers)
                if not _never_sent(failed.error):
                    self._mark_unsure(message.message_id)
                if not (error.code in THROTTLED_CODES and self._waited_out(error, tries_left)):
                    raise error from None  # `from None`: the SDK's own text repeats the number
                continue
            self.throttle.speed_up()
            self._settle(message.message_id)
            return Receipt(provider_id=record.sid, provider_status=record.status)
        raise AssertionError("unreachable: the last try returns or raises")

    def _waited_out(self, error: ChannelError, tries_left: int) -> bool:
        """Twilio said too many requests: fewer at once from now on, and, if this text has
        tries left, wait as long as Twilio asked (True: try again)."""
        self.throttle.slow_down()
        if not tries_left:
            return False
        self._sleep(min(error.retry_after or THROTTLED_WAIT, THROTTLED_LONGEST_WAIT))
        return True

    def find_sent(self, message: Outgoing) -> Receipt | None:
        """Twilio's record of ``message``: to the same number, from our sender, with the same
        body, created since its first attempt.

        Twilio's list is asked by number only, not by DateSent: a text still queued at Twilio
        has no date_sent yet, and those are just the ones a crash right after sending leaves.
        One number gets a few dozen texts from a timeline, so the list stays short.
        """
        first = message.first_attempt_at or self._now() - timedelta(days=1)
        since = (first if first.tzinfo else first.replace(tzinfo=UTC)) - CLOCK_SKEW
        try:
            found = self._call(self._find(message, since))
        except CallFailed as failed:
            self._mark_unsure(message.message_id)  # still unknown: the next send looks again
            raise classify(failed.error, failed.headers) from None
        if found is None:
            return None
        return Receipt(provider_id=found.sid, provider_status=found.status)

    async def _find(self, message: Outgoing, since: datetime) -> Any:
        sender = {"from_": self.from_number} if self.from_number else {}
        records = await self._twilio.client.messages.stream_async(
            to=message.to, **sender, page_size=100, limit=LOOKUP_LIMIT
        )
        async for record in records:
            if self._is_ours(record, message.text, since):
                return record
        return None

    def close(self) -> None:
        self._twilio.close()

    # --- helpers -------------------------------------------------------------------------------

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """On the loop; anything but the SDK's errors (a bug) goes on as it is."""
        try:
            return self._twilio.call(coroutine)
        except CallFailed as failed:
            if not isinstance(failed.error, _SDK_ERRORS):
                raise failed.error from None
            raise

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
# What the SDK raises about talking to Twilio; anything else is a bug and propagates. aiohttp's
# timeouts are TimeoutErrors.
_SDK_ERRORS = (TwilioException, aiohttp.ClientError, TimeoutError, json.JSONDecodeError)
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
    if isinstance(exc, TimeoutError):
        return ChannelError("Twilio did not answer in time", permanent=False, code="timeout")
    if isinstance(exc, aiohttp.ClientError):
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
    # No connection was made: refused, unreachable, or no answer to the connect.
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


def _reason(exc: Exception) -> str:
    """A short cause, without the URL or anything a proxy might have said."""
    if isinstance(exc, aiohttp.ClientSSLError) or isinstance(exc.__cause__, ssl.SSLError):
        return "TLS"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused or unreachable"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return "connection closed"
    return type(exc).__name__


# --- rate limit and throttle ------------------------------------------------------------------


class RateLimit:
    """At most ``rate`` requests in any one second (``rate`` < 1: one in every 1/rate seconds),
    measured where Twilio measures it: a sliding window, not a bucket, whose refill would let a
    second burst into the same second. ``acquire`` blocks until its turn; threads take turns in
    the order they asked, each reserving its own slot.

    ALLOWANCE is added to the window for the time between a slot and its request reaching
    Twilio: thread switches and the loop can delay one request more than the next.
    """

    ALLOWANCE = 0.05  # seconds

    def __init__(
        self,
        rate: float,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be greater than 0, got {rate}")
        self.per_window = max(1, math.floor(rate))
        self.window = max(1.0, 1 / rate) + self.ALLOWANCE
        self._sleep, self._clock = sleep, clock
        self._slots: deque[float] = deque(maxlen=self.per_window)
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Take the next slot, waiting for it if need be; returns the seconds waited."""
        with self._lock:
            now = self._clock()
            at = now
            if len(self._slots) == self.per_window:
                at = max(now, self._slots[0] + self.window)
            self._slots.append(at)  # reserved now, even if it only comes after the wait
        wait = at - now
        if wait > 0:
            self._sleep(wait)
        return wait


class Throttle:
    """How many requests may be at Twilio at once: ``ceiling`` at first, halved by each 429
    (Twilio's "too many concurrent requests"), grown back by one for every ``limit``
    answers that were not (additive increase, multiplicative decrease, as TCP does)."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self.in_flight -= 1
            self._changed.notify()

    def slow_down(self) -> None:
        with self._changed:
            self.limit = max(1.0, self.limit / 2)

    def speed_up(self) -> None:
        with self._changed:
            grown = min(float(self.ceiling), self.limit + 1 / self.limit)
            if int(grown) > int(self.limit):
                self._changed.notify()
            self.limit = grown
