"""Keeping sends in flight: claims, sends and recordings pipelined, so the senders never wait
while a batch is claimed or recorded.

One thread (the caller's) claims and records; a pool of ``concurrency`` threads sends. A new
batch is claimed while the senders still have half a batch queued, so they never drain, and
outcomes are recorded in batches as they come back (every ``record_every`` results, or after
``record_after`` seconds at the latest, or when nothing is left in flight), each batch in one
transaction. Memory is bounded: fewer than ``concurrency`` plus one and a half batches of claims
are held, and at most ``record_every`` outcomes (plus those that came back meanwhile) wait to be
recorded.

If claiming or recording raises, the sends already in flight are waited for before the error
goes on: a pass that has returned has nothing in flight, which is what lets the next pass
reconcile this dispatcher's own leftover ``sending`` rows at once (claims.claim_stale).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

C = TypeVar("C")  # a claim
R = TypeVar("R")  # its outcome


@dataclass(frozen=True)
class Shape:
    concurrency: int  # sends at once
    batch_size: int  # claims per claim transaction
    record_every: int = 200  # outcomes per recording transaction, at most
    record_after: float = 0.5  # seconds an outcome may wait to be recorded, at most


class Pipeline(Generic[C, R]):
    def __init__(self, shape: Shape, name: str = "send") -> None:
        self.shape = shape
        self._pool = ThreadPoolExecutor(shape.concurrency, thread_name_prefix=name)

    def run(
        self,
        claim: Callable[[int], tuple[Sequence[C], bool]],
        send: Callable[[C], R],
        record: Callable[[list[R]], None],
        stopping: threading.Event,
    ) -> None:
        """Claim (``claim(limit)``: up to ``limit`` claims, and whether more may be due), send
        each claim on the pool and record the outcomes, until nothing is due or ``stopping`` is
        set; then finish what is in flight and record it. ``send`` never raises: its outcome
        says what went wrong."""
        outcomes: queue.SimpleQueue[R] = queue.SimpleQueue()
        shape, in_flight, more, waiting = self.shape, 0, True, list[R]()
        refill_below = shape.concurrency + shape.batch_size // 2
        oldest = 0.0  # when the oldest unrecorded outcome came back
        try:
            while True:
                if more and in_flight < refill_below and not stopping.is_set():
                    batch, more = claim(shape.batch_size)
                    for item in batch:
                        self._pool.submit(_deliver, send, item, outcomes)
                    in_flight += len(batch)
                    continue
                if in_flight:
                    came = _collect(outcomes, _time_left(oldest, shape.record_after, waiting))
                    if came and not waiting:
                        oldest = time.monotonic()
                    in_flight -= len(came)
                    waiting += came
                if waiting and _due(waiting, oldest, in_flight, shape):
                    batch_done, waiting = waiting, []
                    record(batch_done)
                if not in_flight and not waiting and not (more and not stopping.is_set()):
                    return
        finally:
            for _ in range(in_flight):  # after an error only: see the module's docstring
                outcomes.get()

    def map(self, send: Callable[[C], R], items: Sequence[C]) -> list[R]:
        """Every item sent on the pool at once, the outcomes in order."""
        return list(self._pool.map(send, items))

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _deliver(send: Callable[[C], R], item: C, outcomes: queue.SimpleQueue[R]) -> None:
    outcomes.put(send(item))


def _collect(outcomes: queue.SimpleQueue[R], timeout: float) -> list[R]:
    """The outcomes that came back: waits up to ``timeout`` for the first, takes the rest."""
    try:
        came = [outcomes.get(timeout=timeout)]
    except queue.Empty:
        return []
    while True:
        try:
            came.append(outcomes.get_nowait())
        except queue.Empty:
            return came


def _time_left(oldest: float, record_after: float, waiting: Sequence[object]) -> float:
    if not waiting:
        return record_after
    return max(oldest + record_after - time.monotonic(), 0.0)


def _due(waiting: Sequence[object], oldest: float, in_flight: int, shape: Shape) -> bool:
    return (
        len(waiting) >= shape.record_every
        or not in_flight
        or time.monotonic() - oldest >= shape.record_after
    )
