"""How sign-in slows down after failures: free tries, then a doubling wait (pure functions).

Counted per account and per source address: guessing one account's password from many
addresses, or many accounts' from one, is slowed either way. A correct password during the
wait is refused too, or the wait would protect nothing.
"""

from __future__ import annotations

from datetime import datetime, timedelta

FREE_FAILURES = 5
FIRST_WAIT = timedelta(seconds=30)
LONGEST_WAIT = timedelta(minutes=15)
# An address's failures are forgotten after a quiet day (a shared ward computer, a typo a week).
FORGET_AFTER = timedelta(hours=24)


def wait_after(failures: int) -> timedelta:
    """The wait after the ``failures``-th failure in a row: none for the first few."""
    if failures < FREE_FAILURES:
        return timedelta(0)
    wait: timedelta = FIRST_WAIT * 2 ** (failures - FREE_FAILURES)
    return min(LONGEST_WAIT, wait)


def wait_left(failures: int, last_failure_at: datetime | None, now: datetime) -> timedelta:
    """How long until the next try is allowed (zero: now)."""
    if last_failure_at is None:
        return timedelta(0)
    return max(timedelta(0), last_failure_at + wait_after(failures) - now)


def describe_wait(span: timedelta) -> str:
    """``"30 seconds"``, ``"2 minutes"``: rounded up, so the try after it is allowed."""
    seconds = max(1, int(-(-span.total_seconds() // 1)))
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
