"""How the SMS channel keeps to ``AFTERCARE_SMS_RATE`` (:class:`RateLimit`) and backs off when
Twilio answers 429 (:class:`Throttle`), whatever the number of sending threads."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


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
