"""The SMS channel: Twilio's Messages API through the official twilio SDK.

The sender is ``TWILIO_MESSAGING_SERVICE_SID`` when set (Twilio picks a number from the service's
pool and applies its opt-out handling), otherwise ``TWILIO_FROM_NUMBER``.

Sends come from many threads at once (``AFTERCARE_SMS_CONCURRENCY``); their requests run on one
event loop with one pool of keep-alive connections (twilio_loop.py says why). Twilio answers 429
(20429) when an account has too many requests in flight: the channel's :class:`Throttle` then
halves how many it lets through and grows that back one at a time, and the refused text is tried
again after the wait Twilio asked for, a few times, before it goes back to the outbox as a
retry. ``AFTERCARE_SMS_RATE`` is held by :class:`RateLimit`, whatever the concurrency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from aftercare.channels.base import ChannelError, Outgoing, Receipt
from aftercare.channels.ratelimit import RateLimit, Throttle
from aftercare.channels.twilio_http import SDK_ERRORS, classify
from aftercare.channels.twilio_loop import CallFailed, TwilioLoop
from aftercare.config import Settings
from aftercare.errors import SettingsError
from aftercare.statuses import ChannelName

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0  # seconds, for connecting and for each read
# Our clock and Twilio's may disagree; records this much older than the first attempt still count.
CLOCK_SKEW = timedelta(minutes=10)
LOOKUP_LIMIT = 1000  # texts to one number looked at by find_sent, newest first
# A text Twilio refused with 429 is tried again this many times (after the wait it asked for, or
# THROTTLED_WAIT) before it goes back to the outbox as a retry.
THROTTLED_TRIES = 3
THROTTLED_WAIT = 1.0  # seconds, when Twilio did not say (Retry-After)
# A longer Retry-After sends the text back to the outbox (due again then) instead of holding a
# sending thread for minutes.
THROTTLED_LONGEST_WAIT = 5.0
THROTTLED_CODES = {"429", "20429"}


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

    def send(self, message: Outgoing) -> Receipt:
        """Send ``message`` now. Whether an earlier attempt may already have gone out is the
        dispatcher's question (it calls :meth:`find_sent` first for every retry), not this
        method's: one place looks, so a retry makes one list call. A 429 is tried again here:
        Twilio refused it, so nothing went out."""
        fields: dict[str, Any] = {"to": message.to, "body": message.text, **self._sender()}
        if message.status_callback:
            fields["status_callback"] = message.status_callback
        for tries_left in range(THROTTLED_TRIES, -1, -1):
            try:
                with self.throttle, self._rate_slot():
                    record = self._call(self._twilio.client.messages.create_async(**fields))
            except CallFailed as failed:
                error = classify(failed.error, failed.headers)
                if not (error.code in THROTTLED_CODES and self._waited_out(error, tries_left)):
                    raise error from None  # `from None`: the SDK's own text repeats the number
                continue
            self.throttle.speed_up()
            return Receipt(provider_id=record.sid, provider_status=record.status)
        raise AssertionError("unreachable: the last try returns or raises")

    def _waited_out(self, error: ChannelError, tries_left: int) -> bool:
        """Twilio said too many requests: fewer at once from now on, and, if this text has
        tries left and Twilio asked for a short wait, wait it out here (True: try again)."""
        self.throttle.slow_down()
        wait = error.retry_after if error.retry_after is not None else THROTTLED_WAIT
        if not tries_left or wait > THROTTLED_LONGEST_WAIT:
            return False
        self._sleep(wait)
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
            if not isinstance(failed.error, SDK_ERRORS):
                raise failed.error from None
            raise

    def _rate_slot(self) -> AbstractContextManager[object]:
        return self.limiter.slot() if self.limiter is not None else nullcontext()

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
