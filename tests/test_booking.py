"""Enrolling when the procedure is booked, recording the discharge later, a follow-up visit."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.conftest import CliRun

# NOW (conftest) is 2026-11-23 17:00 UTC; the procedure is booked for two days later.
BOOKED = "2026-11-25T09:00-06:00"
WENT_HOME = "2026-11-25T12:30-06:00"


def booked(enroll_args: Any, **more: str) -> list[str]:
    return enroll_args(**{"discharged-at": None, "procedure-at": BOOKED, **more})


def steps_of(run: CliRun, enrollment_id: int) -> list[tuple[str, str, str]]:
    shown = json.loads(run("patients", "show", str(enrollment_id), "--json").stdout)
    return [(m["step"], m["channel"], m["local_due"][:20]) for m in shown["messages"]]


def test_a_booked_patient_gets_only_the_evening_before_until_discharge(
    run: CliRun, enroll_args
) -> None:
    result = run(*booked(enroll_args), "--json")

    assert result.exit_code == 0, result.output
    enrolled = json.loads(result.stdout)
    assert (enrolled["procedure_at"], enrolled["discharged_at"]) == ("2026-11-25T15:00:00Z", None)
    assert steps_of(run, enrolled["id"]) == [
        ("before-procedure", "sms", "Tue 2026-11-24 18:00"),
        ("before-procedure", "email", "Tue 2026-11-24 18:00"),
    ]


def test_recording_the_discharge_plans_the_steps_after_it(run: CliRun, enroll_args) -> None:
    enrollment_id = json.loads(run(*booked(enroll_args), "--json").stdout)["id"]

    result = run("discharge", str(enrollment_id), "--discharged-at", WENT_HOME)

    assert result.exit_code == 0, result.output
    assert result.stdout == f"discharged enrollment {enrollment_id}: 18 message(s) planned\n"
    planned = steps_of(run, enrollment_id)
    assert planned[:4] == [
        ("before-procedure", "sms", "Tue 2026-11-24 18:00"),
        ("before-procedure", "email", "Tue 2026-11-24 18:00"),
        ("welcome-home", "sms", "Wed 2026-11-25 14:30"),
        ("welcome-home", "email", "Wed 2026-11-25 14:30"),
    ]
    assert planned[-1] == ("six-weeks", "email", "Wed 2027-01-06 10:00")
    shown = json.loads(run("patients", "show", str(enrollment_id), "--json").stdout)
    assert shown["discharged_at"] == "2026-11-25T18:30:00Z"
    assert [e["kind"] for e in shown["history"]][-1] == "discharged"


def test_a_discharge_is_recorded_once(run: CliRun, enroll_args) -> None:
    enrollment_id = json.loads(run(*booked(enroll_args), "--json").stdout)["id"]
    run("discharge", str(enrollment_id), "--discharged-at", WENT_HOME)

    again = run("discharge", str(enrollment_id), "--discharged-at", WENT_HOME)

    assert again.exit_code == 1
    assert f"id: enrollment {enrollment_id} is already discharged" in again.stderr


def test_a_booked_patient_is_not_rescheduled_before_discharge(run: CliRun, enroll_args) -> None:
    enrollment_id = json.loads(run(*booked(enroll_args), "--json").stdout)["id"]

    result = run("reschedule", str(enrollment_id), "--discharged-at", WENT_HOME)

    assert result.exit_code == 1
    assert "is not discharged yet (first: aftercare discharge)" in result.stderr


def test_a_discharge_before_the_procedure_is_refused_and_changes_nothing(
    run: CliRun, enroll_args
) -> None:
    enrollment_id = json.loads(run(*booked(enroll_args), "--json").stdout)["id"]

    result = run("discharge", str(enrollment_id), "--discharged-at", "2026-11-25T08:00-06:00")

    assert result.exit_code == 1
    assert "--discharged-at: is before the procedure" in result.stderr
    assert len(steps_of(run, enrollment_id)) == 2


def test_enrolling_without_a_discharge_or_a_booking_names_the_flag(
    run: CliRun, enroll_args
) -> None:
    result = run(*enroll_args(**{"discharged-at": None}))

    assert result.exit_code == 1
    assert "--discharged-at: is required (or procedure_at, when only booked)" in result.stderr


def test_enrolling_a_booking_twice_gives_back_the_same_enrollment(run: CliRun, enroll_args) -> None:
    first = json.loads(run(*booked(enroll_args), "--json").stdout)
    again = json.loads(run(*booked(enroll_args), "--json").stdout)

    assert (again["id"], again["created"]) == (first["id"], False)


def test_a_follow_up_visit_is_reminded_the_day_before_at_10(run: CliRun, enroll_args) -> None:
    result = run(*enroll_args(**{"follow-up-at": "2026-12-07T14:00-06:00"}), "--json")

    assert result.exit_code == 0, result.output
    planned = steps_of(run, json.loads(result.stdout)["id"])
    assert ("follow-up-visit", "sms", "Sun 2026-12-06 10:00") in planned


def test_a_follow_up_before_the_discharge_is_refused(run: CliRun, enroll_args) -> None:
    result = run(*enroll_args(**{"follow-up-at": "2026-11-20T14:00-06:00"}))

    assert result.exit_code == 1
    assert "--follow-up-at: is not after the procedure and discharge" in result.stderr


def test_the_evening_before_text_goes_out_through_the_daemon(
    run: CliRun, enroll_args, clock
) -> None:
    run(*booked(enroll_args))
    clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=UTC))  # 18:05 in Chicago, the evening before

    result = run("run", "--once", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "For tomorrow: an adult must drive you home." in result.stdout
    assert "Subject: Getting ready for tomorrow" in result.stdout


def test_a_csv_of_bookings_with_caregivers_enrolls_both_people(run: CliRun, tmp_path: Path) -> None:
    path = tmp_path / "bookings.csv"
    path.write_text(
        "first_name,phone,timezone,procedure,discharged_at,procedure_at,"
        "caregiver_name,caregiver_phone\n"
        f"Ana,+12025550143,America/Chicago,kyphoplasty,,{BOOKED},Sam,+12025550178\n"
        f"Bo,+12025550111,America/Chicago,vertebroplasty,,{BOOKED},,\n",
        encoding="utf-8",
    )

    result = run("import", str(path))
    listed = json.loads(run("patients", "list", "--json").stdout)

    assert result.exit_code == 0, result.output
    assert sorted((r["first_name"], r["procedure"]) for r in listed) == [
        ("Ana", "kyphoplasty"),
        ("Bo", "vertebroplasty"),
        ("Sam", "kyphoplasty"),
    ]


def test_a_csv_row_without_a_discharge_or_a_booking_is_named(run: CliRun, tmp_path: Path) -> None:
    path = tmp_path / "bookings.csv"
    path.write_text(
        "first_name,phone,timezone,procedure,discharged_at\n"
        "Ana,+12025550143,America/Chicago,kyphoplasty,\n",
        encoding="utf-8",
    )

    result = run("import", str(path))

    assert result.exit_code == 1
    assert "bookings.csv:2: discharged_at: is required (or procedure_at, when only booked)" in (
        result.stderr
    )
