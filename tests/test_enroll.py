"""``aftercare enroll`` and ``aftercare patients``: what staff type and what they see."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import CliRun

EnrollArgs = Callable[..., list[str]]
RowCounts = Callable[[], dict[str, int]]
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def enroll(run: CliRun, args: list[str]) -> dict[str, Any]:
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def show(run: CliRun, enrollment_id: int) -> dict[str, Any]:
    result = run("patients", "show", str(enrollment_id), "--json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_enroll_prints_the_new_enrollments_id(run: CliRun, enroll_args: EnrollArgs) -> None:
    data = enroll(run, enroll_args())

    assert isinstance(data["id"], int)
    assert data["created"] is True


def test_patients_show_lists_every_planned_message(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    enrollment_id = enroll(run, enroll_args())["id"]

    data = show(run, enrollment_id)

    assert data["id"] == enrollment_id
    assert data["status"] == "active"
    assert data["procedure"] == "kyphoplasty"
    assert data["timezone"] == "America/Chicago"
    assert {m["channel"] for m in data["messages"]} == {"sms", "email"}
    for message in data["messages"]:
        assert ISO_UTC.match(message["due_at"]), message
        assert message["status"] == "pending"
        assert message["attempts"] == 0
        assert message["provider_id"] is None
        assert message["error_code"] is None
        assert isinstance(message["step"], str)
        assert isinstance(message["occurrence"], int)
    counts = row_counts()
    assert (counts["patient"], counts["enrollment"]) == (1, 1)
    assert counts["message"] == len(data["messages"])


def test_the_first_message_is_due_two_hours_after_discharge_in_utc(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    enrollment_id = enroll(run, enroll_args(discharged_at="2026-11-23T10:30-06:00"))["id"]

    first = show(run, enrollment_id)["messages"][0]

    assert (first["step"], first["occurrence"]) == ("welcome-home", 0)
    assert first["due_at"] == "2026-11-23T18:30:00Z"


def test_the_table_for_people_shows_patient_local_times(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    result = run(*enroll_args(discharged_at="2026-11-23T10:30-06:00"))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("enrolled: id 1, kyphoplasty")
    assert "DUE (PATIENT TIME)" in result.stdout
    assert "Mon 2026-11-23 12:30 CST" in result.stdout  # 18:30 UTC in Chicago


def test_enrolling_twice_with_the_same_external_id_gives_back_the_same_enrollment(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args(external_id="MRN-1001"))
    before = row_counts()

    # The same instant, written with another offset, is the same discharge.
    again = enroll(run, enroll_args(external_id="MRN-1001", discharged_at="2026-11-23T16:30Z"))

    assert again["id"] == first["id"]
    assert again["created"] is False
    assert row_counts()["message"] == before["message"]
    assert row_counts()["enrollment"] == 1


def test_enrolling_twice_without_an_external_id_matches_on_phone_and_first_name(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args())
    before = row_counts()

    again = run(*enroll_args())

    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"already enrolled (nothing changed): id {first['id']}")
    assert row_counts()["message"] == before["message"]
    assert (row_counts()["patient"], row_counts()["enrollment"]) == (1, 1)


@pytest.mark.parametrize(
    ("fields", "flag", "says"),
    [
        ({"phone": "+1202555"}, "--phone", "phone number"),
        ({"phone": "not a number"}, "--phone", "phone number"),
        ({"email": "ana@example"}, "--email", "email address"),
        ({"tz": "EST"}, "--tz", "IANA"),
        ({"tz": "Mars/Olympus_Mons"}, "--tz", "IANA"),
        ({"discharged_at": "2026-11-23T10:30"}, "--discharged-at", "offset"),
        ({"discharged_at": "yesterday"}, "--discharged-at", "ISO 8601"),
        ({"discharged_at": "2025-11-23T10:30-06:00"}, "--discharged-at", "in the past"),
        ({"discharged_at": "2027-11-23T10:30-06:00"}, "--discharged-at", "in the future"),
        ({"procedure": "kyphoplsty"}, "--procedure", "kyphoplasty, vertebroplasty"),
        ({"language": "fr"}, "--language", "en, es"),
        ({"channels": "email", "email": None}, "--channels", "no email address"),
        ({"channels": "fax"}, "--channels", "unknown channel"),
        ({"first_name": "=HYPERLINK()"}, "--first-name", "formula"),
        ({"first_name": "   "}, "--first-name", "required"),
    ],
)
def test_bad_input_names_the_flag_and_writes_nothing(
    run: CliRun,
    enroll_args: EnrollArgs,
    row_counts: RowCounts,
    fields: dict[str, str | None],
    flag: str,
    says: str,
) -> None:
    result = run(*enroll_args(**fields))

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {flag}: ")
    assert result.stderr.count("\n") == 1
    assert says in result.stderr
    assert set(row_counts().values()) == {0}


def test_error_messages_do_not_repeat_the_patients_phone_or_email(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    bad_phone = run(*enroll_args(phone="+1202555999"))
    bad_email = run(*enroll_args(email="ana.perez@example"))

    assert "2555999" not in bad_phone.stderr
    assert "ana.perez" not in bad_email.stderr


def test_patients_list_prints_each_enrollment_with_id_status_and_procedure(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    ana = enroll(run, enroll_args())["id"]
    bo = enroll(
        run,
        enroll_args(first_name="Bo", phone="+12025550178", email=None, procedure="vertebroplasty"),
    )["id"]

    result = run("patients", "list", "--json")

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["id"], r["status"], r["procedure"]) for r in rows] == [
        (bo, "active", "vertebroplasty"),
        (ana, "active", "kyphoplasty"),
    ]


def test_patients_list_filters_by_status(run: CliRun, enroll_args: EnrollArgs) -> None:
    ana = enroll(run, enroll_args())["id"]
    bo = enroll(run, enroll_args(first_name="Bo", phone="+12025550178"))["id"]
    assert run("cancel", str(ana), "--reason", "moved away").exit_code == 0

    cancelled = json.loads(run("patients", "list", "--status", "cancelled", "--json").stdout)
    active = json.loads(run("patients", "list", "--status", "active", "--json").stdout)
    paused = json.loads(run("patients", "list", "--status", "paused", "--json").stdout)

    assert [r["id"] for r in cancelled] == [ana]
    assert [r["id"] for r in active] == [bo]
    assert paused == []


def test_patients_list_refuses_an_unknown_status(run: CliRun) -> None:
    result = run("patients", "list", "--status", "done")

    assert result.exit_code == 2
    assert "--status" in result.stderr


def test_patients_list_on_an_empty_database_says_so(run: CliRun) -> None:
    assert run("patients", "list").stdout == "(none)\n"
    assert json.loads(run("patients", "list", "--json").stdout) == []


def test_patients_list_masks_phone_numbers(run: CliRun, enroll_args: EnrollArgs) -> None:
    enroll(run, enroll_args(phone="+12025550143"))

    table = run("patients", "list").stdout
    rows = json.loads(run("patients", "list", "--json").stdout)

    assert "+12025550143" not in table
    assert "+1******0143" in table
    assert rows[0]["phone"] == "+1******0143"


def test_patients_show_for_people_prints_local_times_and_history(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    enrollment_id = enroll(run, enroll_args(discharged_at="2026-11-23T10:30-06:00"))["id"]

    result = run("patients", "show", str(enrollment_id))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"enrollment {enrollment_id}: kyphoplasty, active")
    assert "Mon 2026-11-23 12:30 CST" in result.stdout
    assert "enrolled" in result.stdout.split("history:")[1]
