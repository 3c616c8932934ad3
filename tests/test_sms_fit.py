"""Every text fits one SMS with the patient's own name in it: a name that pushes it over 160 GSM-7
characters (70 when a character forces UCS-2) is shortened by a rule the timeline author sees,
first to its first word, then left out; a text too long even without a name is never sent, and
nothing is ever cut mid-instruction."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from aftercare import gsm
from aftercare.app import App
from aftercare.clock import ManualClock
from aftercare.config import Settings
from aftercare.models import Message, MessageStatus
from tests.conftest import CliRun
from tests.fakes.twilio import FakeTwilio

ANA = "+12025550143"
WELCOME_DUE = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # discharged 10:00 in Chicago, +2h
BUILTIN = [str(Path(__file__).resolve().parents[1] / "schedules" / f"{name}.yaml")
           for name in ("kyphoplasty", "vertebroplasty")]  # fmt: skip
TOO_LONG = "{{ clinic_name }}: " + "Keep the bandage dry and clean. " * 5 + "STOP to end"


@pytest.fixture
def timelines(tmp_path: Path) -> Path:
    folder = tmp_path / "timelines"
    folder.mkdir()
    (folder / "wordy.yaml").write_text(
        "\n".join(
            [
                "name: wordy",
                "title: too long",
                "version: 1",
                "languages: [en]",
                "steps:",
                "  - id: welcome-home",
                '    at: "+2h"',
                "    channels: [sms]",
                f"    sms: {{en: {json.dumps(TOO_LONG)}}}",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def settings(db_url: str, fake_twilio: FakeTwilio, timelines: Path) -> Settings:
    return fake_twilio.settings(Settings(database_url=db_url, schedules_dir=timelines))


def welcome_text(
    run: CliRun, clock: ManualClock, fake_twilio: FakeTwilio, first_name: str, language: str
) -> str:
    """The welcome text the patient's phone receives."""
    enrolled = run(
        *["enroll", "--first-name", first_name, "--phone", ANA, "--tz", "America/Chicago"],
        *["--procedure", "kyphoplasty", "--discharged-at", "2026-11-23T10:00-06:00"],
        *["--language", language, "--channels", "sms"],
    )
    assert enrolled.exit_code == 0, enrolled.output
    clock.set(WELCOME_DUE)
    assert run("run", "--once").exit_code == 0
    (message,) = fake_twilio.messages
    return message.body


def test_a_long_spanish_name_is_shortened_to_its_first_word(
    run: CliRun, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    text = welcome_text(run, clock, fake_twilio, "Maria Guadalupe del Carmen", "es")

    assert text.startswith("Spine Care Clinic: Maria, deje el vendaje 2 dias.")
    assert text.endswith("+1 555 010 0199. STOP para salir")
    assert gsm.gsm_length(text) <= 160


def test_a_name_whose_first_word_is_too_long_is_left_out_with_its_comma(
    run: CliRun, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    text = welcome_text(run, clock, fake_twilio, "Wolfeschlegelsteinhausenbergerdorffwelche", "es")

    assert text.startswith("Spine Care Clinic: deje el vendaje 2 dias.")
    assert text.endswith("STOP para salir")


def test_in_english_the_name_left_out_takes_its_comma_with_it(
    run: CliRun, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    name = "Maximilianoalexandroconstantinobartholomeus"

    text = welcome_text(run, clock, fake_twilio, name, "en")

    assert text.startswith("Spine Care Clinic: Welcome home. Keep the bandage on 2 days.")
    assert gsm.gsm_length(text) <= 160


def test_a_name_that_would_force_ucs2_is_left_out_rather_than_sent_in_three_parts(
    run: CliRun, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    text = welcome_text(run, clock, fake_twilio, "李小龍", "en")

    assert "李" not in text
    assert gsm.non_gsm_characters(text) == []
    assert text.startswith("Spine Care Clinic: Welcome home. Keep")


def test_a_name_that_fits_is_sent_whole(
    run: CliRun, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    text = welcome_text(run, clock, fake_twilio, "Ana María", "es")

    assert text.startswith("Spine Care Clinic: Ana Maria, deje el vendaje")


def test_preview_shows_the_text_as_it_will_be_sent(run: CliRun) -> None:
    result = run(
        *["preview", "kyphoplasty", "--discharged-at", "2026-11-23T10:00-06:00"],
        *["--tz", "America/Chicago", "--language", "es", "--channels", "sms", "--json"],
        *["--first-name", "Maria Guadalupe del Carmen"],
    )

    assert result.exit_code == 0, result.output
    welcome = json.loads(result.stdout)[0]
    assert welcome["text"].startswith("Spine Care Clinic: Maria, deje")


def test_a_text_too_long_even_without_a_name_is_never_sent(
    run: CliRun, app: App, clock: ManualClock, fake_twilio: FakeTwilio
) -> None:
    enrolled = run(
        *["enroll", "--first-name", "Ana", "--phone", ANA, "--tz", "America/Chicago"],
        *["--procedure", "wordy", "--discharged-at", "2026-11-23T10:00-06:00"],
    )
    assert enrolled.exit_code == 0, enrolled.output
    clock.set(WELCOME_DUE)

    assert run("run", "--once").exit_code == 0

    assert fake_twilio.messages == []
    with app.sessions() as session:
        row = session.scalars(select(Message)).one()
    assert (row.status, row.error_code) == (MessageStatus.FAILED, "sms-too-long")


def test_schedules_check_states_the_name_rule_for_each_text_with_a_name(run: CliRun) -> None:
    result = run("schedules", "check", *BUILTIN)

    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if ": note: " in line]
    assert any(
        "step welcome-home [es] sms: a first name longer than 24 characters is sent as its "
        "first word, or left out" in line
        for line in notes
    ), notes
    assert "0 error(s), 0 warning(s)" in result.stdout


def test_schedules_check_strict_does_not_fail_on_notes(run: CliRun) -> None:
    assert run("schedules", "check", "--strict", *BUILTIN).exit_code == 0
