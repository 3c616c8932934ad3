"""Planning is a pure function: a timeline, a zone and a discharge instant give the messages.

The first half pins examples a clinician can check by hand; the second half states the rules as
properties and lets hypothesis look for a zone and an instant (many near DST changes) that break
them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aftercare.config import QuietHours
from aftercare.planner import PlannedMessage, plan
from aftercare.schedules.load import Catalog
from aftercare.schedules.model import Repeat, Step, Timeline
from aftercare.schedules.timeexpr import After, OnDay, parse_duration, parse_when

QUIET = QuietHours(time(21, 0), time(8, 0))
CHICAGO = ZoneInfo("America/Chicago")
NEW_YORK = ZoneInfo("America/New_York")
KYPHOPLASTY = Catalog.default().get("kyphoplasty")


def make_step(
    step_id: str,
    at: str,
    *,
    every: str | None = None,
    until: str | None = None,
    expires: str = "12h",
    channels: tuple[str, ...] = ("sms",),
) -> Step:
    repeat = Repeat(parse_duration(every), parse_when(until)) if every and until else None
    return Step(
        id=step_id,
        at=parse_when(at),
        expires=parse_duration(expires),
        channels=channels,
        sms={"en": "{{ clinic_name }} STOP"},
        email_subject={"en": "Hello"} if "email" in channels else {},
        email_body={"en": "Hello"} if "email" in channels else {},
        repeat=repeat,
    )


def make_timeline(*steps: Step) -> Timeline:
    return Timeline(
        name="test",
        titles={"en": "Test"},
        version=1,
        languages=("en",),
        steps=steps,
        milestones={},
        source="test.yaml",
    )


def local(at: datetime, tz: tzinfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def sms_of(messages: list[PlannedMessage], step: str) -> list[PlannedMessage]:
    return [m for m in messages if m.step == step and m.channel == "sms"]


# --- examples ----------------------------------------------------------------------------------


def test_a_relative_step_is_due_that_long_after_discharge() -> None:
    discharged = datetime(2026, 11, 23, 10, 30, tzinfo=CHICAGO)

    messages = plan(KYPHOPLASTY, "America/Chicago", discharged, ("sms", "email"), QUIET)

    welcome = [m for m in messages if m.step == "welcome-home"]
    assert [(m.channel, m.due_at) for m in welcome] == [
        ("sms", datetime(2026, 11, 23, 18, 30, tzinfo=UTC)),
        ("email", datetime(2026, 11, 23, 18, 30, tzinfo=UTC)),
    ]


def test_a_day_step_is_due_at_that_wall_time_on_that_calendar_day() -> None:
    # Discharged at 23:30 local on the 23rd: day 2 is the 25th, whatever the UTC date was.
    discharged = datetime(2026, 11, 23, 23, 30, tzinfo=CHICAGO)

    messages = plan(KYPHOPLASTY, "America/Chicago", discharged, ("sms",), QUIET)

    [check_in] = sms_of(messages, "soreness-check")
    assert local(check_in.due_at, CHICAGO) == "2026-11-29 10:00 CST"
    assert check_in.due_at == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)


def test_after_a_late_discharge_the_bandage_stays_on_48_hours_at_the_least() -> None:
    # Discharged at 23:30: the morning of day 2 would be only 33.5 hours later.
    discharged = datetime(2026, 11, 23, 23, 30, tzinfo=CHICAGO)

    messages = plan(KYPHOPLASTY, "America/Chicago", discharged, ("sms",), QUIET)

    [bandage] = sms_of(messages, "bandage-off")
    assert bandage.due_at - discharged >= timedelta(hours=48)
    assert local(bandage.due_at, CHICAGO) == "2026-11-26 08:00 CST"  # after quiet hours


def test_no_heavy_lifting_repeats_weekly_from_day_8_to_day_36() -> None:
    discharged = datetime(2026, 11, 23, 10, 30, tzinfo=CHICAGO)

    messages = plan(KYPHOPLASTY, "America/Chicago", discharged, ("sms",), QUIET)

    lifting = sms_of(messages, "no-heavy-lifting")
    assert [(m.occurrence, local(m.due_at, CHICAGO)) for m in lifting] == [
        (0, "2026-12-01 10:00 CST"),
        (1, "2026-12-08 10:00 CST"),
        (2, "2026-12-15 10:00 CST"),
        (3, "2026-12-22 10:00 CST"),
        (4, "2026-12-29 10:00 CST"),
    ]


def test_the_whole_builtin_timeline_in_order() -> None:
    discharged = datetime(2026, 11, 23, 10, 30, tzinfo=CHICAGO)

    messages = plan(KYPHOPLASTY, "America/Chicago", discharged, ("sms",), QUIET)

    assert [(m.step, local(m.due_at, CHICAGO)) for m in messages] == [
        ("welcome-home", "2026-11-23 12:30 CST"),
        ("bandage-off", "2026-11-25 10:30 CST"),
        ("soreness-check", "2026-11-29 10:00 CST"),
        ("no-heavy-lifting", "2026-12-01 10:00 CST"),
        ("no-heavy-lifting", "2026-12-08 10:00 CST"),
        ("no-heavy-lifting", "2026-12-15 10:00 CST"),
        ("no-heavy-lifting", "2026-12-22 10:00 CST"),
        ("no-heavy-lifting", "2026-12-29 10:00 CST"),
        ("six-weeks", "2027-01-04 10:00 CST"),
    ]


def test_a_step_goes_out_only_on_the_channels_the_patient_has() -> None:
    discharged = datetime(2026, 11, 23, 10, 30, tzinfo=CHICAGO)

    messages = plan(KYPHOPLASTY, "America/Chicago", discharged, ("email",), QUIET)

    assert {m.channel for m in messages} == {"email"}
    assert len(messages) == 9


def test_a_late_discharge_moves_the_welcome_to_8_next_morning() -> None:
    discharged = datetime(2026, 11, 23, 20, 45, tzinfo=CHICAGO)

    messages = plan(KYPHOPLASTY, "America/Chicago", discharged, ("sms",), QUIET)

    [welcome] = sms_of(messages, "welcome-home")
    assert local(welcome.planned_at, CHICAGO) == "2026-11-23 22:45 CST"
    assert local(welcome.due_at, CHICAGO) == "2026-11-24 08:00 CST"
    assert welcome.deferred


def test_an_early_morning_step_waits_until_8_the_same_morning() -> None:
    timeline = make_timeline(make_step("early", "day 1 06:15"))
    discharged = datetime(2026, 11, 23, 10, 30, tzinfo=CHICAGO)

    [early] = plan(timeline, "America/Chicago", discharged, ("sms",), QUIET)

    assert local(early.due_at, CHICAGO) == "2026-11-24 08:00 CST"


def test_a_step_at_the_end_of_quiet_hours_is_not_moved() -> None:
    timeline = make_timeline(make_step("edge", "day 1 08:00"), make_step("late", "day 1 20:59"))
    discharged = datetime(2026, 11, 23, 10, 30, tzinfo=CHICAGO)

    messages = plan(timeline, "America/Chicago", discharged, ("sms",), QUIET)

    assert [m.deferred for m in messages] == [False, False]


def test_without_quiet_hours_nothing_is_moved() -> None:
    discharged = datetime(2026, 11, 23, 20, 45, tzinfo=CHICAGO)

    messages = plan(KYPHOPLASTY, "America/Chicago", discharged, ("sms",), None)

    [welcome] = sms_of(messages, "welcome-home")
    assert local(welcome.due_at, CHICAGO) == "2026-11-23 22:45 CST"


def test_a_message_expires_its_expires_after_it_is_due() -> None:
    discharged = datetime(2026, 11, 23, 20, 45, tzinfo=CHICAGO)

    messages = plan(KYPHOPLASTY, "America/Chicago", discharged, ("sms",), QUIET)

    [welcome] = sms_of(messages, "welcome-home")
    [six_weeks] = sms_of(messages, "six-weeks")
    # Measured from when it is due after quiet hours moved it, not from when it was planned.
    assert welcome.expires_at == welcome.due_at + timedelta(hours=18)
    assert six_weeks.expires_at == six_weeks.due_at + timedelta(days=2)


def test_a_relative_step_counts_elapsed_time_across_a_dst_change() -> None:
    timeline = make_timeline(make_step("welcome", "+2h"))
    # 00:30 EST on the spring-forward night: two hours later the clocks show 03:30 EDT.
    discharged = datetime(2026, 3, 8, 0, 30, tzinfo=NEW_YORK)

    [welcome] = plan(timeline, "America/New_York", discharged, ("sms",), None)

    assert welcome.due_at - discharged == timedelta(hours=2)
    assert local(welcome.due_at, NEW_YORK) == "2026-03-08 03:30 EDT"


def test_a_wall_time_in_the_spring_forward_gap_moves_forward() -> None:
    timeline = make_timeline(make_step("night", "day 2 02:30"))
    discharged = datetime(2026, 3, 6, 12, 0, tzinfo=NEW_YORK)

    [night] = plan(timeline, "America/New_York", discharged, ("sms",), None)

    # 02:30 does not exist on 8 March 2026 in New York; the clocks jump from 02:00 to 03:00.
    assert local(night.due_at, NEW_YORK) == "2026-03-08 03:30 EDT"
    assert night.due_at == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_an_ambiguous_wall_time_at_fall_back_takes_the_first_occurrence() -> None:
    timeline = make_timeline(make_step("night", "day 2 01:30"))
    discharged = datetime(2026, 10, 30, 12, 0, tzinfo=NEW_YORK)

    [night] = plan(timeline, "America/New_York", discharged, ("sms",), None)

    # 01:30 happens twice on 1 November 2026: first in EDT (05:30 UTC), then in EST (06:30 UTC).
    assert local(night.due_at, NEW_YORK) == "2026-11-01 01:30 EDT"
    assert night.due_at == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_a_daily_repeat_keeps_its_wall_time_across_a_dst_change() -> None:
    timeline = make_timeline(make_step("daily", "day 1 10:00", every="1d", until="day 3"))
    discharged = datetime(2026, 3, 6, 12, 0, tzinfo=NEW_YORK)

    messages = plan(timeline, "America/New_York", discharged, ("sms",), QUIET)

    assert [local(m.due_at, NEW_YORK) for m in messages] == [
        "2026-03-07 10:00 EST",
        "2026-03-08 10:00 EDT",
        "2026-03-09 10:00 EDT",
    ]


def test_quiet_hours_ending_in_the_repeated_hour_never_move_a_message_earlier() -> None:
    timeline = make_timeline(make_step("welcome", "+2h"))
    quiet = QuietHours(time(21, 0), time(1, 30))
    # Due at 01:15 EST, in the second pass of 01:00-02:00 on fall-back night; the clocks showed
    # 01:30 once already (in EDT), and will again fifteen minutes later.
    discharged = datetime(2026, 11, 1, 4, 15, tzinfo=UTC)

    [welcome] = plan(timeline, "America/New_York", discharged, ("sms",), quiet)

    assert local(welcome.planned_at, NEW_YORK) == "2026-11-01 01:15 EST"
    assert local(welcome.due_at, NEW_YORK) == "2026-11-01 01:30 EST"


def test_a_relative_repeat_counts_elapsed_time() -> None:
    timeline = make_timeline(make_step("pills", "+6h", every="12h", until="day 1"))
    discharged = datetime(2026, 11, 23, 8, 0, tzinfo=CHICAGO)

    messages = plan(timeline, "America/Chicago", discharged, ("sms",), None)

    assert [local(m.due_at, CHICAGO) for m in messages] == [
        "2026-11-23 14:00 CST",
        "2026-11-24 02:00 CST",
        "2026-11-24 14:00 CST",
    ]


def test_the_discharge_offset_does_not_change_the_plan() -> None:
    instant = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)

    in_utc = plan(KYPHOPLASTY, "America/Chicago", instant, ("sms", "email"), QUIET)
    in_chicago = plan(
        KYPHOPLASTY, "America/Chicago", instant.astimezone(CHICAGO), ("sms", "email"), QUIET
    )

    assert in_utc == in_chicago
    assert all(m.due_at.tzinfo is UTC for m in in_utc)


# --- properties --------------------------------------------------------------------------------

# Every zone the machine knows, but "localtime": it is a link to this machine's own zone, so a
# failure found with it would name a different zone on another machine and not reproduce.
ZONES = sorted(available_timezones() - {"localtime"})
YEARS = range(2020, 2036)
QUIET_CHOICES = [
    None,
    QUIET,
    QuietHours(time(22, 30), time(7, 15)),
    QuietHours(time(0, 0), time(6, 0)),  # starts at midnight, when some zones change clocks
    QuietHours(time(13, 0), time(14, 0)),  # does not wrap past midnight
    # Ends inside the hour that repeats when clocks fall back (in America, then in Europe).
    QuietHours(time(21, 0), time(1, 30)),
    QuietHours(time(23, 0), time(2, 30)),
]

# Steps at the wall times DST changes touch (00:00 to 03:00), at the edges of quiet hours, ties,
# and repeats of both kinds.
PROPERTY_TIMELINE = make_timeline(
    make_step("welcome", "+2h", channels=("sms", "email")),
    make_step("soon", "+90m"),
    make_step("late-evening", "day 0 23:30"),
    make_step("midnight", "day 1 00:00"),
    make_step("past-midnight", "day 1 00:30"),
    make_step("one-thirty", "day 1 01:30"),
    make_step("two-thirty", "day 2 02:30"),
    make_step("quiet-starts", "day 2 21:00"),
    make_step("quiet-ends", "day 3 08:00"),
    make_step("tie-a", "day 3 10:00"),
    make_step("tie-b", "day 3 10:00", channels=("email", "sms")),
    make_step("daily", "day 1 02:00", every="1d", until="day 6"),
    make_step("half-day", "+3h", every="12h", until="day 3"),
)
STEP_ORDER = {step.id: index for index, step in enumerate(PROPERTY_TIMELINE.steps)}
CHANNELS = ("sms", "email")


@cache
def transitions(name: str, year: int) -> tuple[datetime, ...]:
    """The instants in ``year`` at which ``name`` changes its UTC offset, to the second."""
    tz = ZoneInfo(name)
    days = [datetime(year, 1, 1, tzinfo=UTC) + timedelta(days=n) for n in range(367)]
    found = []
    for before, after in pairwise(days):
        if before.astimezone(tz).utcoffset() != after.astimezone(tz).utcoffset():
            found.append(_bisect_change(tz, before, after))
    return tuple(found)


def _bisect_change(tz: tzinfo, low: datetime, high: datetime) -> datetime:
    offset = low.astimezone(tz).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


@st.composite
def patients(draw: st.DrawFn) -> tuple[str, datetime]:
    """A zone and a discharge instant; half the time within hours of a DST change (so relative
    steps land on it), or up to three days before it (so "day N" steps land on that day)."""
    name = draw(st.sampled_from(ZONES))
    year = draw(st.sampled_from(YEARS))
    changes = transitions(name, year)
    near_a_change = draw(st.booleans())
    if changes and near_a_change:
        change = draw(st.sampled_from(changes))
        hours = st.integers(min_value=-3 * 3600, max_value=3 * 3600)
        days = st.integers(min_value=-3 * 86400, max_value=86400)
        seconds = draw(st.one_of(hours, days))
        return name, change + timedelta(seconds=seconds)
    instant = draw(
        st.datetimes(
            min_value=datetime(year, 1, 1),
            max_value=datetime(year, 12, 31, 23, 59, 59),
            timezones=st.just(UTC),
        )
    )
    return name, instant


def is_quiet(wall: time, quiet: QuietHours) -> bool:
    if quiet.start < quiet.end:
        return quiet.start <= wall < quiet.end
    return wall >= quiet.start or wall < quiet.end


def exists(day: date, wall: time, tz: tzinfo) -> bool:
    """Whether clocks in ``tz`` show ``wall`` on ``day`` (false inside a spring-forward gap)."""
    naive = datetime.combine(day, wall)
    round_trip = naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)
    return round_trip.replace(tzinfo=None) == naive


def written_time(step: Step, occurrence: int, local_discharge_day: date) -> tuple[date, time]:
    assert isinstance(step.at, OnDay)
    every = step.repeat.every.days if step.repeat else 0
    return local_discharge_day + timedelta(days=step.at.day + every * occurrence), step.at.at


PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


@PROPERTY_SETTINGS
@given(patients(), st.sampled_from(QUIET_CHOICES))
def test_no_message_is_due_inside_quiet_hours(
    patient: tuple[str, datetime], quiet: QuietHours | None
) -> None:
    name, discharged = patient
    tz = ZoneInfo(name)

    messages = plan(PROPERTY_TIMELINE, name, discharged, CHANNELS, quiet)

    if quiet is not None:
        for m in messages:
            assert not is_quiet(m.due_at.astimezone(tz).time(), quiet), local(m.due_at, tz)
    # Deferred, never dropped or brought forward.
    assert len(messages) == len(plan(PROPERTY_TIMELINE, name, discharged, CHANNELS, None))
    assert all(m.due_at >= m.planned_at for m in messages)


@PROPERTY_SETTINGS
@given(patients(), st.sampled_from(QUIET_CHOICES))
def test_unmoved_steps_keep_their_written_time(
    patient: tuple[str, datetime], quiet: QuietHours | None
) -> None:
    name, discharged = patient
    tz = ZoneInfo(name)
    discharge_day = discharged.astimezone(tz).date()

    for m in plan(PROPERTY_TIMELINE, name, discharged, CHANNELS, quiet):
        if m.deferred:
            continue
        step = PROPERTY_TIMELINE.step_by_id[m.step]
        if isinstance(step.at, After):
            every = step.repeat.every if step.repeat else timedelta(0)
            assert m.due_at == discharged + step.at.offset + every * m.occurrence
            continue
        day, wall = written_time(step, m.occurrence, discharge_day)
        shown = m.due_at.astimezone(tz)
        if exists(day, wall, tz):
            # fold 0: an ambiguous wall time is taken at its first occurrence.
            assert (shown.date(), shown.time(), shown.fold) == (day, wall, 0)
        else:
            # Moved forward by exactly the size of the gap.
            written = datetime.combine(day, wall, tzinfo=tz)
            before, after = written.utcoffset(), written.replace(fold=1).utcoffset()
            assert before is not None and after is not None
            gap = abs(after - before)
            assert shown.replace(tzinfo=None) == datetime.combine(day, wall) + gap


@PROPERTY_SETTINGS
@given(patients(), st.sampled_from(QUIET_CHOICES))
def test_messages_come_in_due_order_and_ties_keep_timeline_order(
    patient: tuple[str, datetime], quiet: QuietHours | None
) -> None:
    name, discharged = patient

    messages = plan(PROPERTY_TIMELINE, name, discharged, CHANNELS, quiet)

    for first, second in pairwise(messages):
        assert first.due_at <= second.due_at
        if first.due_at == second.due_at:
            assert STEP_ORDER[first.step] <= STEP_ORDER[second.step]


@PROPERTY_SETTINGS
@given(patients(), st.sampled_from(QUIET_CHOICES))
def test_the_same_input_gives_the_same_plan(
    patient: tuple[str, datetime], quiet: QuietHours | None
) -> None:
    name, discharged = patient

    first = plan(PROPERTY_TIMELINE, name, discharged, CHANNELS, quiet)
    again = plan(PROPERTY_TIMELINE, name, discharged.astimezone(ZoneInfo(name)), CHANNELS, quiet)

    assert first == again
    keys = [(m.step, m.occurrence, m.channel) for m in first]
    assert len(keys) == len(set(keys))


@PROPERTY_SETTINGS
@given(patients(), st.sampled_from(QUIET_CHOICES))
def test_every_message_expires_after_it_is_due(
    patient: tuple[str, datetime], quiet: QuietHours | None
) -> None:
    name, discharged = patient

    for m in plan(PROPERTY_TIMELINE, name, discharged, CHANNELS, quiet):
        step = PROPERTY_TIMELINE.step_by_id[m.step]
        assert m.expires_at == m.due_at + step.expires
        assert m.expires_at > m.due_at


@PROPERTY_SETTINGS
@given(patients())
def test_the_builtin_timeline_plans_every_step_for_any_patient(
    patient: tuple[str, datetime],
) -> None:
    name, discharged = patient

    messages = plan(KYPHOPLASTY, name, discharged, ("sms",), QUIET)

    assert [(m.step, m.occurrence) for m in messages] == [
        ("welcome-home", 0),
        ("bandage-off", 0),
        ("soreness-check", 0),
        *(("no-heavy-lifting", n) for n in range(5)),
        ("six-weeks", 0),
    ]


@pytest.mark.parametrize("written", ["day ٣ 09:00", "day 3 ٠٩:00", "+٢h", "day ３"])
def test_times_take_only_ascii_digits(written):
    with pytest.raises(ValueError):
        parse_when(written)


@pytest.mark.parametrize("written", ["٢h", "1٢d"])
def test_durations_take_only_ascii_digits(written):
    with pytest.raises(ValueError):
        parse_duration(written)
