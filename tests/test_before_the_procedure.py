"""Steps before the procedure and for the caregiver: planned from the booking, seen in preview."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aftercare.config import QuietHours
from aftercare.errors import ScheduleError
from aftercare.planner import plan
from aftercare.schedules.load import Catalog, load_timeline
from aftercare.schedules.timeexpr import PROCEDURE, After, OnDay, parse_when
from tests.conftest import CliRun

QUIET = QuietHours(time(21, 0), time(8, 0))
CHICAGO = ZoneInfo("America/Chicago")
KYPHOPLASTY = Catalog.default().get("kyphoplasty")
PROCEDURE_AT = datetime(2026, 11, 23, 9, 0, tzinfo=CHICAGO)
DISCHARGED_AT = datetime(2026, 11, 23, 12, 30, tzinfo=CHICAGO)


def local(at: datetime) -> str:
    return at.astimezone(CHICAGO).strftime("%Y-%m-%d %H:%M")


# --- time expressions ------------------------------------------------------------------------


def test_a_wall_time_before_the_procedure_is_a_day_counted_from_the_procedure() -> None:
    assert parse_when("procedure -1d 18:00") == OnDay(-1, time(18, 0), PROCEDURE)
    assert str(parse_when("procedure  -1d  18:00")) == "procedure -1d 18:00"


def test_a_span_before_the_procedure_is_a_negative_offset_from_it() -> None:
    assert parse_when("procedure -2h") == After(-timedelta(hours=2), PROCEDURE)
    assert str(parse_when("procedure -90m")) == "procedure -90m"


@pytest.mark.parametrize("written", ["procedure 2h", "procedure -1d 25:00", "procedure -0h"])
def test_a_malformed_procedure_time_says_what_is_expected(written: str) -> None:
    with pytest.raises(ValueError, match="procedure -1d 18:00"):
        parse_when(written)


# --- planning --------------------------------------------------------------------------------


def test_the_evening_before_the_procedure_is_planned_from_the_booking_alone() -> None:
    messages = plan(
        KYPHOPLASTY, "America/Chicago", None, ("sms",), QUIET, procedure_at=PROCEDURE_AT
    )

    assert [(m.step, local(m.due_at)) for m in messages] == [
        ("before-procedure", "2026-11-22 18:00")
    ]


def test_the_steps_after_discharge_wait_for_the_discharge() -> None:
    booked = plan(KYPHOPLASTY, "America/Chicago", None, ("sms",), QUIET, procedure_at=PROCEDURE_AT)
    discharged = plan(
        KYPHOPLASTY, "America/Chicago", DISCHARGED_AT, ("sms",), QUIET, procedure_at=PROCEDURE_AT
    )

    assert "welcome-home" not in {m.step for m in booked}
    assert [m.step for m in discharged][:3] == ["before-procedure", "welcome-home", "bandage-off"]


def test_a_step_before_the_procedure_is_never_sent_once_it_has_begun(tmp_path: Path) -> None:
    path = tmp_path / "early.yaml"
    path.write_text(
        "name: early\ntitle: Early\nversion: 1\nlanguages: [en]\nsteps:\n"
        "  - id: two-hours-before\n    at: 'procedure -2h'\n    expires: 12h\n"
        "    channels: [sms]\n"
        "    sms: {en: '{{ clinic_name }} {{ clinic_phone }} STOP'}\n",
        encoding="utf-8",
    )
    # At 07:00, two hours before is 05:00: quiet hours move it to 08:00, after the start.
    procedure = datetime(2026, 11, 23, 7, 0, tzinfo=CHICAGO)

    [message] = plan(
        load_timeline(path), "America/Chicago", None, ("sms",), QUIET, procedure_at=procedure
    )

    assert local(message.due_at) == "2026-11-23 08:00"
    assert message.expires_at == procedure  # so it expires instead of being sent


def test_the_caregiver_gets_the_driver_first_48_hours_and_warning_sign_steps_only() -> None:
    messages = plan(
        KYPHOPLASTY,
        "America/Chicago",
        DISCHARGED_AT,
        ("sms",),
        QUIET,
        procedure_at=PROCEDURE_AT,
        audience="caregiver",
    )

    assert [m.step for m in messages] == ["before-procedure", "welcome-home", "bandage-off"]


def test_the_patient_gets_no_more_than_three_texts_in_the_first_week_with_the_evening_before() -> (
    None
):
    messages = plan(
        KYPHOPLASTY, "America/Chicago", DISCHARGED_AT, ("sms",), QUIET, procedure_at=PROCEDURE_AT
    )

    first_week = [m for m in messages if m.due_at < PROCEDURE_AT + timedelta(days=6)]
    assert [m.step for m in first_week] == ["before-procedure", "welcome-home", "bandage-off"]


# --- validation ------------------------------------------------------------------------------


def _file(tmp_path: Path, step: str) -> Path:
    path = tmp_path / "t.yaml"
    path.write_text(
        "name: t\ntitle: T\nversion: 1\nlanguages: [en]\nsteps:\n" + step, encoding="utf-8"
    )
    return path


def test_an_unknown_audience_is_named_with_its_line(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "  - id: a\n    at: '+2h'\n    channels: [sms]\n    audience: [patient, neighbour]\n"
        "    sms: {en: 'x'}\n",
    )

    with pytest.raises(ScheduleError) as caught:
        load_timeline(path)

    assert caught.value.line == 9  # the audience line
    assert "audience must be a list drawn from ['patient', 'caregiver']" in caught.value.reason


def test_a_step_before_the_procedure_cannot_repeat(tmp_path: Path) -> None:
    path = _file(
        tmp_path,
        "  - id: a\n    at: 'procedure -3d 10:00'\n    channels: [sms]\n"
        "    repeat: {every: 1d, until: 'day 1'}\n    sms: {en: 'x'}\n",
    )

    with pytest.raises(ScheduleError, match="a step counted from the procedure cannot repeat"):
        load_timeline(path)


# --- preview ---------------------------------------------------------------------------------


def test_preview_shows_the_whole_path_for_the_patient_and_the_caregiver_in_their_languages(
    run: CliRun,
) -> None:
    result = run(
        "preview",
        "kyphoplasty",
        "--procedure-at",
        "2026-11-23T09:00-06:00",
        "--discharged-at",
        "2026-11-23T12:30-06:00",
        "--tz",
        "America/Chicago",
        "--language",
        "es",
        "--caregiver-language",
        "en",
        "--channels",
        "sms",
        "--json",
    )

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    path = [(r["local_due"][:20], r["step"], r["audience"], r["language"]) for r in rows]
    assert path[:6] == [
        ("Sun 2026-11-22 18:00", "before-procedure", "patient", "es"),
        ("Sun 2026-11-22 18:00", "before-procedure", "caregiver", "en"),
        ("Mon 2026-11-23 14:30", "welcome-home", "patient", "es"),
        ("Mon 2026-11-23 14:30", "welcome-home", "caregiver", "en"),
        ("Wed 2026-11-25 12:30", "bandage-off", "patient", "es"),
        ("Wed 2026-11-25 12:30", "bandage-off", "caregiver", "en"),
    ]
    assert path[-1] == ("Mon 2027-01-04 10:00", "six-weeks", "patient", "es")
    assert {r["audience"] for r in rows[6:]} == {"patient"}
    texts = {(r["step"], r["audience"]): r["text"] for r in rows}
    assert "Un adulto debe llevarle a casa" in texts["before-procedure", "patient"]
    assert "Tomorrow you drive a patient home" in texts["before-procedure", "caregiver"]
    assert "hasta el lunes 4 de enero" in texts["no-heavy-lifting", "patient"]


def test_preview_of_a_booking_alone_says_the_rest_waits_for_the_discharge(run: CliRun) -> None:
    result = run(
        "preview",
        "kyphoplasty",
        "--procedure-at",
        "2026-11-23T09:00-06:00",
        "--tz",
        "America/Chicago",
    )

    assert result.exit_code == 0, result.output
    assert "before-procedure #0" in result.stdout
    assert "welcome-home" not in result.stdout
    assert "planned when it is recorded (--discharged-at)" in result.stdout


def test_preview_without_either_time_names_the_flag(run: CliRun) -> None:
    result = run("preview", "kyphoplasty", "--tz", "America/Chicago")

    assert result.exit_code == 1
    assert "--discharged-at" in result.stderr


def test_preview_of_a_discharge_before_the_procedure_is_refused(run: CliRun) -> None:
    result = run(
        "preview",
        "kyphoplasty",
        "--procedure-at",
        "2026-11-23T09:00-06:00",
        "--discharged-at",
        "2026-11-23T08:00-06:00",
        "--tz",
        "America/Chicago",
    )

    assert result.exit_code == 1
    assert "--discharged-at: is before --procedure-at" in result.stderr
