"""The pipeline that keeps sends in flight (aftercare.inflight), with plain functions for the
claims, the sends and the recordings: every claim sent once and recorded once, sends going on
while a batch is recorded, and nothing left in flight when a pass ends, even by an error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from aftercare.inflight import Pipeline, Shape


class Work:
    """``total`` claims handed out in order; sends that take ``seconds``; recordings kept."""

    def __init__(self, total: int, seconds: float = 0.0) -> None:
        self.left = list(range(total))
        self.seconds = seconds
        self.sent: list[int] = []
        self.recorded: list[list[int]] = []
        self.claims = 0
        self._lock = threading.Lock()

    def claim(self, limit: int) -> tuple[list[int], bool]:
        self.claims += 1
        batch, self.left = self.left[:limit], self.left[limit:]
        return batch, len(batch) == limit

    def send(self, item: int) -> int:
        time.sleep(self.seconds)  # the provider's answer takes this long
        with self._lock:
            self.sent.append(item)
        return item

    def record(self, outcomes: list[int]) -> None:
        self.recorded.append(sorted(outcomes))


@pytest.fixture
def pipeline() -> Iterator[Pipeline[int, int]]:
    made = Pipeline[int, int](Shape(concurrency=8, batch_size=20, record_every=50))
    yield made
    made.close()


def test_every_claim_is_sent_once_and_recorded_once(pipeline: Pipeline[int, int]) -> None:
    work = Work(1_000)

    pipeline.run(work.claim, work.send, work.record, threading.Event())

    assert sorted(work.sent) == list(range(1_000))
    assert sorted(i for batch in work.recorded for i in batch) == list(range(1_000))
    # A recording waits for 50 outcomes, plus what came back with the 50th (all in flight).
    assert all(len(batch) < 50 + 8 + 20 + 20 // 2 for batch in work.recorded)


def test_sends_go_on_while_a_batch_is_being_recorded(pipeline: Pipeline[int, int]) -> None:
    work = Work(400, seconds=0.002)
    sent_meanwhile: list[int] = []

    def slow_record(outcomes: list[int]) -> None:
        before = len(work.sent)
        time.sleep(0.05)  # a recording transaction that takes its time
        sent_meanwhile.append(len(work.sent) - before)
        work.record(outcomes)

    pipeline.run(work.claim, work.send, slow_record, threading.Event())

    assert sorted(work.sent) == list(range(400))
    assert max(sent_meanwhile) >= 8, "the senders waited for the recording"


def test_fewer_claims_are_held_than_the_senders_plus_a_batch_and_a_half(
    pipeline: Pipeline[int, int],
) -> None:
    work = Work(500, seconds=0.001)
    held: list[int] = []  # claimed and not yet sent, as each claim returns

    def counting_claim(limit: int) -> tuple[list[int], bool]:
        batch, more = work.claim(limit)
        held.append(500 - len(work.left) - len(work.sent))
        return batch, more

    pipeline.run(counting_claim, work.send, work.record, threading.Event())

    assert max(held) < 8 + 20 + 20 // 2


def test_a_failed_recording_waits_for_the_sends_in_flight_before_it_raises(
    pipeline: Pipeline[int, int],
) -> None:
    work = Work(200, seconds=0.002)
    claimed: list[int] = []

    def claim(limit: int) -> tuple[list[int], bool]:
        batch, more = work.claim(limit)
        claimed.extend(batch)
        return batch, more

    def failing_record(outcomes: list[int]) -> None:
        raise ConnectionError("the database went away")

    with pytest.raises(ConnectionError):
        pipeline.run(claim, work.send, failing_record, threading.Event())

    assert sorted(work.sent) == sorted(claimed), "a send was still in flight"


def test_stopping_claims_no_more_and_records_what_was_in_flight(
    pipeline: Pipeline[int, int],
) -> None:
    work = Work(1_000, seconds=0.001)
    stopping = threading.Event()

    def record_then_stop(outcomes: list[int]) -> None:
        work.record(outcomes)
        stopping.set()

    pipeline.run(work.claim, work.send, record_then_stop, stopping)

    recorded = sorted(i for batch in work.recorded for i in batch)
    assert recorded == sorted(work.sent)
    assert len(work.left) > 0, "it went on claiming after the stop"
