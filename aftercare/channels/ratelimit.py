"""How the SMS channel keeps to ``AFTERCARE_SMS_RATE`` (:class:`RateLimit`) and backs off when
Twilio answers 429 (:class:`Throttle`), whatever the number of sending threads."""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RateLimit:
    """At most ``rate`` requests in any one second (``rate`` < 1: one in every 1/rate seconds),
    as Twilio counts them: by when they reach it, whatever the number of threads.

    Each request holds one of ``per_window`` slots; a slot is free again a window after the
    request it served was answered. A request reaches Twilio before its answer comes back and
    after it was started, so two requests on one slot reach Twilio at least a window apart,
    however long a connect, a TLS handshake or a busy event loop held either of them: no window
    holds more than ``per_window``. (Spacing by when requests were started instead let a slow
    start, the first requests of a run opening their connections, put twice the rate into one
    second at the fake.) The cost is the latency: at most ``per_window`` requests per window plus
    one answer's time, about 13% under the rate at 150 ms.
    """

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
        self.window = max(1.0, 1 / rate)
        self._sleep, self._clock = sleep, clock
        self._free_at: deque[float] = deque([-math.inf] * self.per_window)  # earliest first
        self._returned = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[float]:
        """Hold a slot for one request (the block); yields the seconds waited for it."""
        with self._returned:
            self._returned.wait_for(lambda: bool(self._free_at))
            free_at = self._free_at.popleft()
        wait = max(free_at - self._clock(), 0.0)
        if wait > 0:
            self._sleep(wait)
        try:
            yield wait
        finally:
            with self._returned:
                self._free_at.append(self._clock() + self.window)
                self._returned.notify()


class Throttle:
    """How many requests may be at Twilio at once: ``ceiling`` at first, halved by a 429
    (Twilio's "too many concurrent requests"), grown back by one for every ``limit`` answers
    that were not: additive increase, multiplicative decrease, as TCP does. As in TCP, one cut
    per window: the other 429s of the same burst (answers to requests sent before the cut)
    do not cut again."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self._answers = 0
        self._cut_at: int | None = None  # answers counted at the last cut
        self._changed = threading.Condition()

    def __enter__(self) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self.in_flight < int(self.limit))
            self.in_flight += 1

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self.in_flight -= 1
            self._answers += 1
            self._changed.notify()

    def slow_down(self) -> None:
        with self._changed:
            if self._cut_at is not None and self._answers - self._cut_at < self.limit:
                return
            self.limit = max(1.0, self.limit / 2)
            self._cut_at = self._answers

    def speed_up(self) -> None:
        with self._changed:
            grown = min(float(self.ceiling), self.limit + 1 / self.limit)
            if int(grown) > int(self.limit):
                self._changed.notify()
            self.limit = grown
