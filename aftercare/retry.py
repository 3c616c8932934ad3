"""What happens after a failed send: retry when, or give up how. Pure; the caller brings ``now``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from aftercare.channels.base import ChannelError
from aftercare.statuses import MessageStatus

# However many attempts, never wait more than this between two (a reminder is time-bound).
MAX_DELAY = timedelta(hours=6)


@dataclass(frozen=True)
class RetryPolicy:
    base: float  # seconds before the first retry (AFTERCARE_RETRY_BACKOFF)
    max_attempts: int  # AFTERCARE_MAX_ATTEMPTS

    def delay(
        self, attempts: int, rng: random.Random, retry_after: float | None = None
    ) -> timedelta:
        """Exponential backoff with "equal jitter": half fixed, half random, so a burst of
        failures (a provider outage) does not come back as a burst. A Retry-After from the
        provider is a floor, never shortened by jitter."""
        ceiling = min(self.base * 2 ** max(attempts - 1, 0), MAX_DELAY.total_seconds())
        seconds = ceiling / 2 + rng.uniform(0, ceiling / 2)
        if retry_after is not None:
            seconds = max(seconds, retry_after)
        return timedelta(seconds=seconds)


@dataclass(frozen=True)
class Outcome:
    """What to write on the message row after a failed attempt."""

    status: MessageStatus
    next_attempt_at: datetime | None


def after_failure(
    error: ChannelError,
    attempts: int,
    expires_at: datetime,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> Outcome:
    """``attempts`` counts the one that just failed."""
    if error.opt_out:
        return Outcome(MessageStatus.SUPPRESSED, None)
    if error.permanent or attempts >= policy.max_attempts:
        return Outcome(MessageStatus.FAILED, None)
    retry_at = now + policy.delay(attempts, rng, error.retry_after)
    if retry_at >= expires_at:
        # Its window closes before we could try again: late is wrong, so it expires unsent.
        return Outcome(MessageStatus.EXPIRED, None)
    return Outcome(MessageStatus.PENDING, retry_at)
