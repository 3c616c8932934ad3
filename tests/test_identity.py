"""One patient, one active enrollment per procedure: enrolling again never doubles the texts, and a
later enrollment never changes the patient's language, phone or email behind staff's back;
``aftercare patients edit`` is the one, audited, way to change them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import CliRun

EnrollArgs = Callable[..., list[str]]
RowCounts = Callable[[], dict[str, int]]
CORRECTED = "2026-11-23T12:00-06:00"  # the first enrollment says 10:30


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


def assert_one_line_error(result: Any, flag: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {flag}: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr


# --- one active enrollment per patient and procedure ---------------------------------------------


def test_a_corrected_discharge_time_is_refused_and_points_to_reschedule(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args(external_id="MRN-0042"))
    before = row_counts()

    again = run(*enroll_args(external_id="MRN-0042", discharged_at=CORRECTED))

    assert_one_line_error(again, "--discharged-at")
    assert f"aftercare reschedule {first['id']} --discharged-at" in again.stderr
    assert "--reschedule" in again.stderr
    assert row_counts() == before


def test_without_an_external_id_the_same_phone_and_first_name_is_the_same_patient(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args(first_name="Ana"))
    before = row_counts()

    # The name as another nurse typed it: case and spacing do not make a new person.
    again = run(*enroll_args(first_name="  ANA ", discharged_at=CORRECTED))

    assert_one_line_error(again, "--discharged-at")
    assert f"aftercare reschedule {first['id']}" in again.stderr
    assert row_counts() == before


def test_enroll_with_reschedule_moves_the_existing_enrollment(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args())
    before = row_counts()

    moved = enroll(run, [*enroll_args(discharged_at=CORRECTED), "--reschedule"])

    assert moved["id"] == first["id"]
    assert moved["created"] is False
    assert moved["rescheduled"] is True
    assert moved["discharged_at"] == "2026-11-23T18:00:00Z"
    assert "rescheduled" in [event["kind"] for event in show(run, first["id"])["history"]]
    assert row_counts()["enrollment"] == before["enrollment"]
    assert row_counts()["message"] == before["message"]


def test_enroll_with_reschedule_and_the_same_time_changes_nothing(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    first = enroll(run, enroll_args())

    again = run(*enroll_args(), "--reschedule")

    assert again.exit_code == 0, again.output
    assert again.stdout.startswith(f"already enrolled (nothing changed): id {first['id']}")


def test_after_a_cancellation_the_patient_can_be_enrolled_again(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args())
    assert run("cancel", str(first["id"]), "--reason", "wrong patient chart").exit_code == 0

    second = enroll(run, enroll_args(discharged_at=CORRECTED))

    assert second["created"] is True
    assert second["id"] != first["id"]
    assert (row_counts()["patient"], row_counts()["enrollment"]) == (1, 2)


def test_another_procedure_is_another_enrollment_of_the_same_patient(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    enroll(run, enroll_args())

    second = enroll(run, enroll_args(procedure="vertebroplasty", discharged_at=CORRECTED))

    assert second["created"] is True
    assert (row_counts()["patient"], row_counts()["enrollment"]) == (1, 2)


def test_an_import_reports_a_second_discharge_of_the_same_patient_as_a_bad_row(
    run: CliRun, tmp_path: Path, row_counts: RowCounts
) -> None:
    header = "first_name,phone,timezone,procedure,discharged_at"
    ana = "Ana,+12025550143,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00"
    corrected = "Ana,+12025550143,America/Chicago,kyphoplasty,2026-11-23T12:00-06:00"
    path = tmp_path / "discharges.csv"
    path.write_text(f"{header}\n{ana}\n{corrected}\n", encoding="utf-8")

    result = run("import", str(path))

    assert result.exit_code == 1
    assert f"{path}:3: discharged_at: " in result.stderr
    assert "aftercare reschedule 1" in result.stderr
    assert result.stdout.startswith("2 rows: enrolled 1, already enrolled 0, 1 bad")
    assert (row_counts()["patient"], row_counts()["enrollment"]) == (1, 1)


# --- a later enrollment never changes the patient silently --------------------------------------


def test_a_second_enrollment_without_a_language_keeps_the_patients_language(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    first = enroll(run, enroll_args(language="es"))

    second = enroll(run, enroll_args(procedure="vertebroplasty"))

    assert show(run, first["id"])["language"] == "es"
    assert show(run, second["id"])["language"] == "es"


def test_a_second_enrollment_with_another_language_is_refused_and_points_to_patients_edit(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args(language="es"))
    before = row_counts()

    second = run(*enroll_args(procedure="vertebroplasty", language="en"))

    assert_one_line_error(second, "--language")
    assert f"aftercare patients edit {first['id']} --language en" in second.stderr
    assert row_counts() == before
    assert show(run, first["id"])["language"] == "es"


def test_a_second_enrollment_with_another_email_is_refused_without_echoing_either_address(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args())
    before = row_counts()

    second = run(*enroll_args(procedure="vertebroplasty", email="ana.new@example.org"))

    assert_one_line_error(second, "--email")
    assert f"aftercare patients edit {first['id']} --email" in second.stderr
    assert "ana.new" not in second.stderr and "ana@example" not in second.stderr
    assert row_counts() == before


def test_a_second_enrollment_without_an_email_keeps_the_email_on_file(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    first = enroll(run, enroll_args())

    enroll(run, enroll_args(procedure="vertebroplasty", email=None))

    assert show(run, first["id"])["email"] == "ana@example.org"


def test_the_same_mrn_with_another_phone_is_refused_and_points_to_patients_edit(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args(external_id="MRN-0042"))
    before = row_counts()

    second = run(
        *enroll_args(external_id="MRN-0042", procedure="vertebroplasty", phone="+12025550199")
    )

    assert_one_line_error(second, "--phone")
    assert f"aftercare patients edit {first['id']} --phone" in second.stderr
    assert "5550199" not in second.stderr
    assert row_counts() == before


# --- patients edit: the explicit, audited change ------------------------------------------------


def test_patients_edit_changes_the_language_of_every_enrollment_and_says_who_did_it(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    first = enroll(run, enroll_args(language="es"))
    second = enroll(run, enroll_args(procedure="vertebroplasty"))

    result = run("patients", "edit", str(first["id"]), "--language", "en")

    assert result.exit_code == 0, result.output
    assert "language" in result.stdout
    for enrollment in (first, second):
        data = show(run, enrollment["id"])
        assert data["language"] == "en"
        (edit,) = [e for e in data["history"] if e["kind"] == "contact_edited"]
        assert edit["actor"] == "staff:test"  # the test App's actor (--as NAME outside tests)
        assert edit["detail"] == {"fields": ["language"]}


def test_patients_edit_changes_phone_and_email_and_the_audit_trail_holds_neither(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    first = enroll(run, enroll_args())

    result = run(
        "patients",
        "edit",
        str(first["id"]),
        "--phone",
        "(202) 555-0199",
        "--email",
        "ana.new@example.org",
        "--reason",
        "patient's new number",
    )

    assert result.exit_code == 0, result.output
    data = show(run, first["id"])
    assert (data["phone"], data["email"]) == ("+12025550199", "ana.new@example.org")
    (edit,) = [e for e in data["history"] if e["kind"] == "contact_edited"]
    assert edit["reason"] == "patient's new number"
    assert "5550199" not in json.dumps(edit) and "ana.new" not in json.dumps(edit)


def test_after_a_phone_edit_the_new_number_and_first_name_find_the_patient(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    first = enroll(run, enroll_args())
    assert run("patients", "edit", str(first["id"]), "--phone", "+12025550199").exit_code == 0

    again = enroll(run, enroll_args(phone="+12025550199"))

    assert again["id"] == first["id"]
    assert again["created"] is False
    assert row_counts()["patient"] == 1


def test_patients_edit_refuses_a_bad_value_naming_the_flag_and_changes_nothing(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    first = enroll(run, enroll_args())

    result = run("patients", "edit", str(first["id"]), "--phone", "+1202555", "--language", "es")

    assert_one_line_error(result, "--phone")
    data = show(run, first["id"])
    assert (data["phone"], data["language"]) == ("+12025550143", "en")
    assert "contact_edited" not in [e["kind"] for e in data["history"]]


def test_patients_edit_refuses_a_language_the_timeline_does_not_offer(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    first = enroll(run, enroll_args())

    result = run("patients", "edit", str(first["id"]), "--language", "fr")

    assert_one_line_error(result, "--language")
    assert "en, es" in result.stderr


def test_patients_edit_without_a_change_says_what_it_needs(
    run: CliRun, enroll_args: EnrollArgs
) -> None:
    first = enroll(run, enroll_args())

    result = run("patients", "edit", str(first["id"]))

    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "--phone, --email or --language" in result.stderr


def test_patients_edit_of_an_unknown_enrollment_is_a_one_line_error(run: CliRun) -> None:
    result = run("patients", "edit", "99", "--language", "es")

    assert result.exit_code == 1
    assert result.stderr == "error: id: no enrollment 99\n"


def test_patients_edit_refuses_the_phone_and_name_of_another_patient(
    run: CliRun, enroll_args: EnrollArgs, row_counts: RowCounts
) -> None:
    enroll(run, enroll_args(phone="+12025550199"))
    other = enroll(run, enroll_args(phone="+12025550143", procedure="vertebroplasty"))

    result = run("patients", "edit", str(other["id"]), "--phone", "+12025550199")

    assert_one_line_error(result, "--phone")
    assert "another patient" in result.stderr
    assert show(run, other["id"])["phone"] == "+12025550143"
