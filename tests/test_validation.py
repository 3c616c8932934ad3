"""What staff type: each value comes back in its normal form or is refused with a reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aftercare.validation import (
    check_discharge_time,
    parse_channels,
    parse_email,
    parse_external_id,
    parse_first_name,
    parse_instant,
    parse_phone,
    parse_timezone,
)

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("(202) 555-0143", "+12025550143"),
        ("202.555.0143", "+12025550143"),
        ("+1 202 555 0143", "+12025550143"),
        ("+44 7911 123456", "+447911123456"),
        ("+34 612 34 56 78", "+34612345678"),
        (" +12025550143 ", "+12025550143"),
    ],
)
def test_it_normalises_a_phone_number_to_e164(typed: str, e164: str) -> None:
    assert parse_phone(typed) == e164


@pytest.mark.parametrize("typed", ["", "12345", "call me", "+1 202 555 01439", "+999 1234 5678"])
def test_it_rejects_a_bad_phone_number(typed: str) -> None:
    with pytest.raises(ValueError, match="phone number"):
        parse_phone(typed)


def test_a_phone_error_does_not_repeat_the_number() -> None:
    with pytest.raises(ValueError) as caught:
        parse_phone("+1 202 555 01439")
    assert "01439" not in str(caught.value)


@pytest.mark.parametrize("typed", ["ana@example.org", "a.b+care@mail.example.co.uk"])
def test_it_accepts_an_email_address(typed: str) -> None:
    assert parse_email(f" {typed} ") == typed


@pytest.mark.parametrize(
    "typed", ["ana.example.org", "ana@example", "ana@example,org", "ana @example.org", "@x.org"]
)
def test_it_rejects_an_email_address_with_a_typo(typed: str) -> None:
    with pytest.raises(ValueError, match="is not an email address"):
        parse_email(typed)


@pytest.mark.parametrize("typed", ["America/New_York", "Europe/Madrid", "Asia/Kolkata", "UTC"])
def test_it_accepts_an_iana_time_zone(typed: str) -> None:
    assert parse_timezone(typed) == typed


@pytest.mark.parametrize(
    "typed", ["EST", "pst", "HST", "EST5EDT", "Eastern", "America/Nowhere", "../etc", "localtime"]
)
def test_it_rejects_what_is_not_an_iana_time_zone(typed: str) -> None:
    with pytest.raises(ValueError, match="is not an IANA time zone"):
        parse_timezone(typed)


@pytest.mark.parametrize(
    ("typed", "instant"),
    [
        ("2026-11-23T14:30-05:00", datetime(2026, 11, 23, 19, 30, tzinfo=UTC)),
        ("2026-11-23T19:30Z", datetime(2026, 11, 23, 19, 30, tzinfo=UTC)),
        ("2026-11-23 19:30:15+00:00", datetime(2026, 11, 23, 19, 30, 15, tzinfo=UTC)),
        ("2026-11-24T06:00+10:30", datetime(2026, 11, 23, 19, 30, tzinfo=UTC)),
    ],
)
def test_it_reads_an_iso_time_with_an_offset_as_utc(typed: str, instant: datetime) -> None:
    parsed = parse_instant(typed)

    assert parsed == instant
    assert parsed.tzinfo is UTC


def test_it_rejects_an_iso_time_without_an_offset() -> None:
    with pytest.raises(ValueError, match="has no UTC offset"):
        parse_instant("2026-11-23T14:30")


@pytest.mark.parametrize("typed", ["yesterday", "23/11/2026 14:30", "2026-13-01T00:00Z"])
def test_it_rejects_what_is_not_an_iso_time(typed: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 8601 time"):
        parse_instant(typed)


def test_it_accepts_a_discharge_within_the_allowed_range() -> None:
    for at in (NOW - timedelta(days=90), NOW, NOW + timedelta(days=30)):
        assert check_discharge_time(at, NOW) == at


def test_it_rejects_a_discharge_too_far_in_the_past() -> None:
    with pytest.raises(ValueError, match="more than 90 days in the past"):
        check_discharge_time(NOW - timedelta(days=91), NOW)


def test_it_rejects_a_discharge_too_far_in_the_future() -> None:
    with pytest.raises(ValueError, match="more than 30 days in the future"):
        check_discharge_time(NOW + timedelta(days=30, seconds=1), NOW)


def test_it_tidies_the_spaces_of_a_first_name() -> None:
    assert parse_first_name("  María  José ") == "María José"


@pytest.mark.parametrize("typed", ["=cmd|' /C calc'!A0", "+SUM(A1)", "-2+3", "@SUM(A1)"])
def test_it_rejects_a_first_name_that_looks_like_a_formula(typed: str) -> None:
    with pytest.raises(ValueError, match="looks like a spreadsheet formula"):
        parse_first_name(typed)


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("   ", "is empty"),
        ("A" * 61, "is longer than 60 characters"),
        ("<b>Ana</b>", "contains control characters or markup"),
        ("Ana\x00", "contains control characters or markup"),
        ("{{ clinic_name }}", "contains control characters or markup"),
    ],
)
def test_it_rejects_a_first_name_that_is_not_a_name(typed: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_first_name(typed)


def test_it_reads_a_list_of_channels() -> None:
    assert parse_channels(" SMS, email,sms ") == ("sms", "email")


@pytest.mark.parametrize(("typed", "reason"), [("", "is empty"), ("sms,fax", "unknown channel")])
def test_it_rejects_a_bad_list_of_channels(typed: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_channels(typed)


def test_it_rejects_an_external_id_with_markup() -> None:
    assert parse_external_id(" MRN-001 ") == "MRN-001"
    with pytest.raises(ValueError, match="markup"):
        parse_external_id("<script>")
