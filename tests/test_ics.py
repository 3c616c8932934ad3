"""Calendar attachments: RFC 5545 lines, folding and escaping, read back by a small parser."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aftercare import ics
from aftercare.ics import Milestone, calendar, escape_text, fold

STAMP = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
MILESTONES = [
    Milestone("bandage-off", date(2026, 11, 25), "Bandage may come off"),
    Milestone(
        "lifting", date(2027, 1, 3), "Last day of no heavy lifting", "From tomorrow, go slowly."
    ),
]

Property = tuple[str, dict[str, str], str]


def unfold(data: bytes) -> list[str]:
    """Content lines: CRLF followed by one space or tab continues the line before."""
    text = data.decode()
    assert text.endswith("\r\n")
    assert "\n" not in text.replace("\r\n", "") and "\r" not in text.replace("\r\n", "")
    return re.sub(r"\r\n[ \t]", "", text).removesuffix("\r\n").split("\r\n")


def unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m[1] in "nN" else m[1], value)


def parse(data: bytes) -> list[Property]:
    properties = []
    for line in unfold(data):
        head, _, value = line.partition(":")
        name, *params = head.split(";")
        properties.append((name, dict(p.split("=", 1) for p in params), value))
    return properties


def events(data: bytes) -> list[dict[str, Property]]:
    found: list[dict[str, Property]] = []
    for prop in parse(data):
        if prop[:1] == ("BEGIN",) and prop[2] == "VEVENT":
            found.append({})
        elif found and prop[0] not in {"BEGIN", "END"}:
            found[-1][prop[0]] = prop
    return found


def test_a_calendar_publishes_one_all_day_event_per_milestone() -> None:
    data = calendar(MILESTONES, scope=17, domain="clinic.example.org", stamp=STAMP)

    properties = parse(data)
    assert properties[:5] == [
        ("BEGIN", {}, "VCALENDAR"),
        ("VERSION", {}, "2.0"),
        ("PRODID", {}, ics.PRODID),
        ("CALSCALE", {}, "GREGORIAN"),
        ("METHOD", {}, "PUBLISH"),
    ]
    assert properties[-1] == ("END", {}, "VCALENDAR")
    bandage, lifting = events(data)
    assert bandage["UID"][2] == "aftercare-17-bandage-off@clinic.example.org"
    assert bandage["DTSTAMP"][2] == "20261123T170000Z"
    assert bandage["DTSTART"][1:] == ({"VALUE": "DATE"}, "20261125")
    assert bandage["DTEND"][1:] == ({"VALUE": "DATE"}, "20261126")
    assert bandage["SUMMARY"][2] == "Bandage may come off"
    assert "DESCRIPTION" not in bandage
    assert bandage["TRANSP"][2] == "TRANSPARENT"
    assert lifting["DTEND"][2] == "20270104"
    assert unescape(lifting["DESCRIPTION"][2]) == "From tomorrow, go slowly."


def test_the_same_input_gives_the_same_bytes() -> None:
    def build() -> bytes:
        return calendar(MILESTONES, scope=17, domain="clinic.example.org", stamp=STAMP)

    assert build() == build()


def test_dtstamp_is_written_in_utc() -> None:
    chicago_noon = datetime(2026, 11, 23, 11, 0, tzinfo=timezone(timedelta(hours=-6)))

    data = calendar(MILESTONES[:1], scope=1, domain="d.example", stamp=chicago_noon)

    assert events(data)[0]["DTSTAMP"][2] == "20261123T170000Z"


def test_an_event_on_new_years_eve_ends_in_the_next_year() -> None:
    data = calendar(
        [Milestone("eve", date(2026, 12, 31), "x")], scope=1, domain="d.example", stamp=STAMP
    )

    assert events(data)[0]["DTEND"][2] == "20270101"


def test_texts_carry_the_patients_language() -> None:
    milestones = [
        Milestone("bandage-off", date(2026, 11, 25), "Puede quitarse el vendaje", "Dúchese."),
    ]

    data = calendar(milestones, scope=1, domain="d.example", stamp=STAMP, language="es")

    [event] = events(data)
    assert event["SUMMARY"][1:] == ({"LANGUAGE": "es"}, "Puede quitarse el vendaje")
    assert event["DESCRIPTION"][1:] == ({"LANGUAGE": "es"}, "Dúchese.")


def test_commas_semicolons_backslashes_and_newlines_are_escaped() -> None:
    summary = "Ice, rest; walk\\slowly\nthen\r\nsit"
    named = "Care; plan, v2"

    data = calendar(
        [Milestone("a", date(2026, 11, 25), summary)],
        scope=1,
        domain="d.example",
        stamp=STAMP,
        name=named,
    )

    [event] = events(data)
    assert event["SUMMARY"][2] == "Ice\\, rest\\; walk\\\\slowly\\nthen\\nsit"
    assert unescape(event["SUMMARY"][2]) == "Ice, rest; walk\\slowly\nthen\nsit"
    assert ("X-WR-CALNAME", {}, "Care\\; plan\\, v2") in parse(data)


def test_control_characters_are_dropped() -> None:
    assert escape_text("a\x00b\x07c\td\x7f") == "abc\td"


def test_long_lines_are_folded_at_75_octets_without_splitting_a_character() -> None:
    description = "Después de su cifoplastia: evite levantar objetos pesados 🏋️ " * 6

    data = calendar(
        [Milestone("a", date(2026, 11, 25), "x", description)],
        scope=1,
        domain="d.example",
        stamp=STAMP,
    )

    physical = data.split(b"\r\n")[:-1]
    assert max(len(line) for line in physical) == 75
    assert all(len(line) <= 75 for line in physical)
    for line in physical:
        line.decode()  # each physical line is whole UTF-8
    assert sum(line.startswith(b" ") for line in physical) > 3
    assert unescape(events(data)[0]["DESCRIPTION"][2]) == description


def test_a_short_line_is_not_folded() -> None:
    assert fold("SUMMARY:" + "x" * 67) == "SUMMARY:" + "x" * 67
    assert fold("SUMMARY:" + "x" * 68) == "SUMMARY:" + "x" * 67 + "\r\n x"


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=300))
def test_any_text_survives_escaping_and_folding(text: str) -> None:
    line = "DESCRIPTION:" + escape_text(text)
    folded = fold(line).encode()

    assert all(len(physical) <= 75 for physical in folded.split(b"\r\n"))
    [unfolded] = unfold(folded + b"\r\n")
    expected = re.sub(
        r"[\x00-\x08\x0b-\x1f\x7f]", "", text.replace("\r\n", "\n").replace("\r", "\n")
    )
    assert unescape(unfolded.partition(":")[2]) == expected


@pytest.mark.parametrize(
    ("milestones", "options", "problem"),
    [
        ([], {}, "at least one milestone"),
        (MILESTONES[:1] * 2, {}, "unique"),
        ([Milestone("a b", date(2026, 1, 1), "x")], {}, "key 'a b'"),
        (MILESTONES, {"domain": "x;y"}, "domain"),
        (MILESTONES, {"language": "e;s"}, "language tag"),
        (MILESTONES, {"stamp": datetime(2026, 1, 1)}, "aware"),
    ],
)
def test_what_cannot_be_written_safely_is_refused(
    milestones: list[Milestone], options: dict[str, object], problem: str
) -> None:
    arguments: dict[str, object] = {"scope": 1, "domain": "d.example", "stamp": STAMP} | options
    with pytest.raises(ValueError, match=problem):
        calendar(milestones, **arguments)  # type: ignore[arg-type]


def test_the_attachment_is_a_published_calendar() -> None:
    attached = ics.attachment(b"data")

    assert attached.filename == "aftercare.ics"
    assert attached.content_type == "text/calendar; charset=utf-8; method=PUBLISH"
