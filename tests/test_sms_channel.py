"""The SMS channel: the real twilio SDK over HTTP against the fake Twilio API on loopback."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from aftercare.channels.base import ChannelError, Outgoing
from aftercare.channels.ratelimit import RateLimit, Throttle
from aftercare.channels.sms import THROTTLED_TRIES, SmsChannel
from aftercare.channels.twilio_http import TwilioTransport, retry_after_seconds
from aftercare.config import Settings
from aftercare.errors import SettingsError
from tests.fakes.twilio import FakeTwilio, busiest_second

PATIENT = "+12025550143"
SERVICE_SID = "MG" + "0123abcd" * 4
CALLBACK = "https://clinic.example.org/webhooks/twilio/status"
TODAY = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


@pytest.fixture
def outgoing() -> Callable[..., Outgoing]:
    """Factory: an SMS for the patient, with any field replaced."""
    counter = iter(range(1, 1_000_000))

    def make(**fields: Any) -> Outgoing:
        values: dict[str, Any] = {
            "message_id": next(counter),
            "channel": "sms",
            "to": PATIENT,
            "text": "Spine Care Clinic: you may shower today. Questions? +1 555 010 0199",
            "language": "en",
            "first_attempt_at": datetime.now(UTC) - timedelta(minutes=5),
        }
        return Outgoing(**(values | fields))

    return make


@pytest.fixture
def make_channel(fake_twilio: FakeTwilio) -> Iterator[Callable[..., SmsChannel]]:
    """Factory: an SmsChannel pointed at the fake, with settings or options replaced."""
    channels: list[SmsChannel] = []

    def make(settings: Settings | None = None, **options: Any) -> SmsChannel:
        channels.append(SmsChannel(settings or fake_twilio.settings(), **options))
        return channels[-1]

    yield make
    for channel in channels:
        channel.close()


@pytest.fixture
def channel(make_channel: Callable[..., SmsChannel]) -> SmsChannel:
    return make_channel()


def refusal(channel: SmsChannel, message: Outgoing) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        channel.send(message)
    text = str(caught.value)
    assert message.to not in text and message.text not in text, "the error leaks patient data"
    return caught.value


# --- sending -----------------------------------------------------------------------------------


def test_a_text_arrives_with_its_number_sender_body_and_status_callback(
    channel: SmsChannel, fake_twilio: FakeTwilio, outgoing: Callable[..., Outgoing]
) -> None:
    message = outgoing(status_callback=CALLBACK)

    receipt = channel.send(message)

    [received] = fake_twilio.messages
    assert (received.to, received.from_, received.body) == (PATIENT, "+15005550006", message.text)
    assert received.status_callback == CALLBACK
    assert received.messaging_service_sid is None
    assert (receipt.provider_id, receipt.provider_status) == (received.sid, "queued")
    assert receipt.provider_id is not None and len(receipt.provider_id) == 34


def test_without_a_status_callback_none_is_sent(
    channel: SmsChannel, fake_twilio: FakeTwilio, outgoing: Callable[..., Outgoing]
) -> None:
    channel.send(outgoing())

    [received] = fake_twilio.messages
    assert set(received.params) == {"To", "From", "Body"}


def test_the_messaging_service_is_the_sender_when_one_is_set(
    make_channel: Callable[..., SmsChannel],
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
) -> None:
    channel = make_channel(fake_twilio.settings(twilio_messaging_service_sid=SERVICE_SID))

    channel.send(outgoing())

    [received] = fake_twilio.messages
    assert received.messaging_service_sid == SERVICE_SID
    assert received.from_ is None  # the service picks the number from its pool


def test_each_sending_thread_keeps_its_connection_alive(
    channel: SmsChannel, fake_twilio: FakeTwilio, outgoing: Callable[..., Outgoing]
) -> None:
    for _ in range(20):
        channel.send(outgoing())
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(channel.send, [outgoing() for _ in range(40)]))

    assert fake_twilio.requests["create"] == 60
    assert fake_twilio.requests["connection"] <= 5


def test_the_sdk_ignores_twilio_edge_and_region_in_the_environment(
    channel: SmsChannel,
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_EDGE", "sydney")
    monkeypatch.setenv("TWILIO_REGION", "au1")

    channel.send(outgoing())

    assert len(fake_twilio.messages) == 1


def test_it_requires_twilio_settings() -> None:
    with pytest.raises(SettingsError, match="TWILIO_ACCOUNT_SID"):
        SmsChannel(Settings(twilio_from_number="+15005550006"))
    with pytest.raises(SettingsError, match="TWILIO_FROM_NUMBER or TWILIO_MESSAGING_SERVICE_SID"):
        SmsChannel(Settings(twilio_account_sid="AC" + "0" * 32, twilio_auth_token="t"))


def test_no_request_leaves_for_a_url_outside_the_twilio_api() -> None:
    transport = TwilioTransport("http://127.0.0.1:9", timeout=1)

    with pytest.raises(ValueError, match="unexpected Twilio URL"):
        transport.request("GET", "https://messaging.twilio.com/v1/Services")


def test_logs_at_info_never_hold_the_number_or_the_body(
    channel: SmsChannel, outgoing: Callable[..., Outgoing], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    message = outgoing()

    channel.send(message)
    channel.find_sent(message)

    assert PATIENT not in caplog.text and "%2B12025550143" not in caplog.text
    assert message.text not in caplog.text


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("to", "code", "opt_out"),
    [
        ("+15005550001", "21211", False),  # invalid number
        ("+15005550009", "21614", False),  # not a mobile
        ("+15005550004", "21610", True),  # unsubscribed (replied STOP)
        ("+15005550002", "21612", False),  # cannot route
        ("+15005550003", "21408", False),  # region not enabled
    ],
)
def test_twilio_test_numbers_fail_for_good_with_their_code(
    channel: SmsChannel, outgoing: Callable[..., Outgoing], to: str, code: str, opt_out: bool
) -> None:
    error = refusal(channel, outgoing(to=to))

    assert (error.permanent, error.code, error.opt_out) == (True, code, opt_out)
    assert error.retry_after is None


def test_too_many_requests_is_tried_again_after_the_wait_twilio_asked_for(
    make_channel: Callable[..., SmsChannel],
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
) -> None:
    clock = FakeClock()
    channel = make_channel(sleep=clock.sleep, clock=clock)
    fake_twilio.fail_next(2, status=429, retry_after=2)

    receipt = channel.send(outgoing())

    [received] = fake_twilio.messages
    assert receipt.provider_id == received.sid
    assert clock.sleeps == [2.0, 2.0]
    assert fake_twilio.requests["create"] == 3


def test_too_many_requests_every_time_is_transient_and_says_when_to_come_back(
    make_channel: Callable[..., SmsChannel],
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
) -> None:
    clock = FakeClock()
    channel = make_channel(sleep=clock.sleep, clock=clock)
    fake_twilio.fail_next(THROTTLED_TRIES + 1, status=429, retry_after=2)

    error = refusal(channel, outgoing())

    assert (error.permanent, error.code, error.retry_after) == (False, "20429", 2.0)
    assert fake_twilio.messages == []
    assert fake_twilio.requests["list"] == 0  # a 429 was refused, not lost: nothing to look for


def test_a_429_halves_the_requests_in_flight_and_each_text_still_arrives_once(
    make_channel: Callable[..., SmsChannel],
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
) -> None:
    clock = FakeClock()
    channel = make_channel(fake_twilio.settings(sms_concurrency=16), sleep=clock.sleep, clock=clock)
    fake_twilio.fail_next(3, status=429)
    messages = [outgoing(text=f"Reminder {n}") for n in range(40)]

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(channel.send, messages))

    assert sorted(m.body for m in fake_twilio.messages) == sorted(m.text for m in messages)
    assert fake_twilio.requests["create"] == 43
    assert channel.throttle.limit < 16


def test_the_throttle_cuts_once_for_a_burst_and_grows_back_by_one_a_window() -> None:
    throttle = Throttle(16)
    for _ in range(3):  # three 429s before any answer since the first: one burst
        throttle.slow_down()
    cut = throttle.limit
    for _ in range(10):  # more than a window of answers at the new limit
        with throttle:
            pass
        throttle.speed_up()
    grown = throttle.limit
    throttle.slow_down()  # a 429 after a whole window: a new burst

    assert cut == 8
    assert 9 < grown < 10  # about one more for a window of answers
    assert throttle.limit == grown / 2


def test_a_server_error_is_transient(
    channel: SmsChannel, fake_twilio: FakeTwilio, outgoing: Callable[..., Outgoing]
) -> None:
    fake_twilio.fail_next(1, status=500)

    error = refusal(channel, outgoing())

    assert (error.permanent, error.code, error.retry_after) == (False, "20500", None)


def test_an_unknown_code_is_judged_by_its_http_status(
    channel: SmsChannel, fake_twilio: FakeTwilio, outgoing: Callable[..., Outgoing]
) -> None:
    fake_twilio.fail_next(1, status=503, code=12345)
    fake_twilio.fail_next(1, status=400, code=12346)

    assert (refusal(channel, outgoing()).permanent, refusal(channel, outgoing()).permanent) == (
        False,
        True,
    )


def test_wrong_credentials_are_transient_so_messages_wait_for_the_operators_fix(
    make_channel: Callable[..., SmsChannel],
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
) -> None:
    channel = make_channel(fake_twilio.settings(twilio_auth_token="not-the-token"))

    error = refusal(channel, outgoing())

    assert (error.permanent, error.code) == (False, "20003")
    assert "TWILIO_AUTH_TOKEN" in str(error)
    assert fake_twilio.requests["unauthorized"] == 1


def test_a_stopped_api_refuses_the_connection_and_a_restarted_one_takes_the_next_send(
    channel: SmsChannel, fake_twilio: FakeTwilio, outgoing: Callable[..., Outgoing]
) -> None:
    channel.send(outgoing())  # leaves a kept-alive connection in the pool
    fake_twilio.stop()

    error = refusal(channel, outgoing())
    fake_twilio.start()
    channel.send(outgoing())

    assert (error.permanent, error.code) == (False, "connection")
    assert len(fake_twilio.messages) == 2


def test_a_timeout_is_transient(
    make_channel: Callable[..., SmsChannel],
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
) -> None:
    channel = make_channel(timeout=0.2)
    fake_twilio.stall_next(1, 1.0)

    error = refusal(channel, outgoing())

    assert (error.permanent, error.code) == (False, "timeout")


# --- finding what was sent (reconciliation after a crash) --------------------------------------


@pytest.mark.parametrize("at_twilio", ["queued", "sent"])
def test_find_sent_returns_the_message_twilio_already_took(
    channel: SmsChannel,
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
    at_twilio: str,
) -> None:
    message = outgoing()
    receipt = channel.send(message)
    if at_twilio == "sent":
        fake_twilio.mark_sent()

    found = channel.find_sent(message)

    assert found is not None
    assert (found.provider_id, found.provider_status) == (receipt.provider_id, at_twilio)


def test_find_sent_returns_none_for_a_message_never_sent(
    channel: SmsChannel, outgoing: Callable[..., Outgoing]
) -> None:
    channel.send(outgoing(text="Another reminder from Spine Care Clinic"))
    channel.send(outgoing(to="+12025550188"))

    assert channel.find_sent(outgoing()) is None


def test_find_sent_ignores_the_same_text_sent_before_the_first_attempt(
    channel: SmsChannel, fake_twilio: FakeTwilio, outgoing: Callable[..., Outgoing]
) -> None:
    """A weekly reminder repeats its text; last week's copy is not this week's."""
    fake_twilio.now = lambda: TODAY - timedelta(days=7)
    channel.send(outgoing())
    fake_twilio.now = lambda: TODAY - timedelta(hours=1)
    channel.send(outgoing())

    assert channel.find_sent(outgoing(first_attempt_at=TODAY)) is None


def test_find_sent_ignores_texts_from_another_sender(
    make_channel: Callable[..., SmsChannel],
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
) -> None:
    other_service = "MG" + "9" * 32
    make_channel(fake_twilio.settings(twilio_messaging_service_sid=other_service)).send(outgoing())
    ours = make_channel(fake_twilio.settings(twilio_messaging_service_sid=SERVICE_SID))

    assert ours.find_sent(outgoing()) is None


def test_find_sent_follows_twilios_pages(
    channel: SmsChannel, outgoing: Callable[..., Outgoing]
) -> None:
    first = outgoing(text="The first text")
    receipt = channel.send(first)
    for number in range(120):  # newer texts come first: the match is on the second page
        channel.send(outgoing(text=f"Text {number}"))

    found = channel.find_sent(first)

    assert found is not None and found.provider_id == receipt.provider_id


@pytest.mark.parametrize(
    ("status", "code", "retry_after"),
    [(429, "20429", 3.0), (500, "20500", None), (401, "401", None)],
)
def test_a_lookup_twilio_refuses_is_transient(
    channel: SmsChannel,
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
    status: int,
    code: str,
    retry_after: float | None,
) -> None:
    fake_twilio.fail_next(1, status=status, retry_after=retry_after, on="list")

    with pytest.raises(ChannelError) as caught:
        channel.find_sent(outgoing())

    assert (caught.value.permanent, caught.value.code) == (False, code)
    assert caught.value.retry_after == retry_after


# --- threads and speed -------------------------------------------------------------------------


def test_200_sends_from_8_threads_each_arrive_exactly_once(
    channel: SmsChannel, fake_twilio: FakeTwilio, outgoing: Callable[..., Outgoing]
) -> None:
    messages = [outgoing(text=f"Reminder {n}") for n in range(200)]

    with ThreadPoolExecutor(8) as pool:
        receipts = list(pool.map(channel.send, messages))

    assert sorted(m.body for m in fake_twilio.messages) == sorted(m.text for m in messages)
    assert len({r.provider_id for r in receipts}) == 200


def test_throughput_against_the_fake(
    channel: SmsChannel, outgoing: Callable[..., Outgoing], capsys: pytest.CaptureFixture[str]
) -> None:
    """Printed, not asserted (run with -s to see it): loopback speed varies by machine."""
    messages = [outgoing(text=f"Reminder {n}") for n in range(400)]
    channel.send(messages[0])  # connect first
    started = time.perf_counter()
    for message in messages[:200]:
        channel.send(message)
    single = 200 / (time.perf_counter() - started)
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(channel.send, messages[200:]))
    threaded = 200 / (time.perf_counter() - started)
    with capsys.disabled():
        print(f"\nsms via the real SDK: {single:.0f}/s from 1 thread, {threaded:.0f}/s from 8")


# --- rate limit --------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def requests_through(limit: RateLimit, count: int) -> list[float]:
    """``count`` instant requests one after the other; the seconds each waited for its slot."""
    waits = []
    for _ in range(count):
        with limit.slot() as waited:
            waits.append(waited)
    return waits


def test_the_limit_lets_rate_requests_into_a_second_then_waits_for_the_window_to_slide() -> None:
    clock = FakeClock()

    waits = requests_through(RateLimit(2, sleep=clock.sleep, clock=clock), 5)

    assert waits == [0, 0, 1, 0, 1]


def test_a_slot_is_free_again_a_window_after_its_answer_not_its_start() -> None:
    clock = FakeClock()
    limit = RateLimit(1, sleep=clock.sleep, clock=clock)
    with limit.slot():
        clock.now += 0.3  # the request takes 300 ms

    [waited] = requests_through(limit, 1)

    assert waited == pytest.approx(1.0)  # 1.3 s after the first one started


def test_a_rate_below_one_a_second_spaces_every_request() -> None:
    clock = FakeClock()

    waits = requests_through(RateLimit(0.5, sleep=clock.sleep, clock=clock), 3)

    assert waits == [0, 2, 2]


def test_waiting_threads_each_take_a_slot_of_their_own() -> None:
    clock = FakeClock()
    recorded: list[float] = []
    limit = RateLimit(4, sleep=recorded.append, clock=clock)  # time stands still

    with ThreadPoolExecutor(8) as pool:
        waits = sorted(pool.map(lambda _: requests_through(limit, 1)[0], range(9)))

    assert waits == [0] * 4 + [1] * 5
    assert recorded == [1] * 5


def test_the_channel_holds_to_the_sms_rate(
    make_channel: Callable[..., SmsChannel],
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
) -> None:
    clock = FakeClock()
    channel = make_channel(fake_twilio.settings(sms_rate=1.0), sleep=clock.sleep, clock=clock)

    for _ in range(3):
        channel.send(outgoing())

    assert clock.sleeps == [1.0, 1.0]
    assert len(fake_twilio.messages) == 3


def test_no_second_at_twilio_holds_more_texts_than_the_rate_from_many_threads(
    make_channel: Callable[..., SmsChannel],
    fake_twilio: FakeTwilio,
    outgoing: Callable[..., Outgoing],
) -> None:
    """On the real clock: the rate is measured where Twilio sees the requests arrive."""
    channel = make_channel(fake_twilio.settings(sms_rate=10.0))
    messages = [outgoing(text=f"Reminder {n}") for n in range(25)]

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(channel.send, messages))

    assert len(fake_twilio.messages) == 25
    assert busiest_second(fake_twilio.creates, fake_twilio.from_number) == 10


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)

    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("Mon, 23 Nov 2026 17:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Mon, 23 Nov 2026 16:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
