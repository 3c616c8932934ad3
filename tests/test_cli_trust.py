"""Failing loudly at the command line: a command that only reads never creates a database and
says which file it looked for; an id no record can have is "no enrollment N", never a traceback;
a patient can be found by the clinic's MRN; the small things a new user trips on (a piped CSV,
a spreadsheet's header and delimiter, every bad field of a row at once, a forgotten --reason, a
malformed setting in `doctor`) each get one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CliRun

HUGE = [4155550143, 2**63 + 7]
DISCHARGED = "2026-11-23T10:30-06:00"


def aftercare(
    cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``aftercare ARGS`` as a user runs it, from ``cwd``, with only these settings."""
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("AFTERCARE_", "TWILIO_"))}
    return subprocess.run(
        [sys.executable, "-m", "aftercare", *args],
        cwd=cwd,
        env=base | (env or {}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- 12: the wrong database, silently ------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["patients", "list"],
        ["stats"],
        ["inbox"],
        ["audit", "--since", "7d"],
        ["patients", "show", "1"],
    ],
)
def test_a_read_command_without_a_database_names_the_file_and_creates_nothing(tmp_path, command):
    result = aftercare(tmp_path, *command)
    assert result.returncode == 1, result.stdout
    assert result.stderr == (
        f"error: database: {tmp_path / 'aftercare.db'} does not exist; create it with "
        "'aftercare db upgrade' (or set AFTERCARE_DATABASE_URL to the database you meant)\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_mistyped_folder_is_never_created(tmp_path):
    missing = tmp_path / "nonexistent" / "dir" / "x.db"
    result = aftercare(tmp_path, "stats", env={"AFTERCARE_DATABASE_URL": f"sqlite:///{missing}"})
    assert result.returncode == 1
    assert f"error: database: {missing} does not exist" in result.stderr
    assert not (tmp_path / "nonexistent").exists()


def test_doctor_names_the_resolved_database_file(tmp_path):
    result = aftercare(tmp_path, "doctor")
    assert result.returncode == 1
    assert f"{tmp_path / 'aftercare.db'}: no database file yet" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_enrolling_still_creates_the_database_where_it_says(tmp_path):
    result = aftercare(
        tmp_path,
        "enroll",
        "--first-name",
        "Ana",
        "--phone",
        "+12025550143",
        "--tz",
        "America/Chicago",
        "--procedure",
        "kyphoplasty",
        "--discharged-at",
        DISCHARGED,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "aftercare.db").exists()
    assert aftercare(tmp_path, "patients", "list").returncode == 0


# --- 13: ids no record can have, and MRNs ---------------------------------------------------------


@pytest.mark.parametrize("number", HUGE)
@pytest.mark.parametrize(
    ("command", "noun"),
    [
        (["patients", "show", "{n}"], "enrollment"),
        (["cancel", "{n}", "--reason", "duplicate"], "enrollment"),
        (["pause", "{n}"], "enrollment"),
        (["resume", "{n}"], "enrollment"),
        (["reschedule", "{n}", "--discharged-at", DISCHARGED], "enrollment"),
        (["patients", "edit", "{n}", "--language", "es"], "enrollment"),
        (["inbox", "done", "{n}"], "reply"),
        (["audit", "--enrollment", "{n}", "--since", "7d"], "enrollment"),
    ],
)
def test_an_id_too_large_for_any_record_is_not_found(run: CliRun, command, noun, number):
    result = run(*[part.format(n=number) for part in command])
    assert result.exit_code == 1
    assert result.stderr.endswith(f"no {noun} {number}\n")
    assert len(result.stderr.splitlines()) == 1


def test_a_patient_is_found_by_the_clinics_mrn(run: CliRun, enroll_args):
    assert run(*enroll_args(external_id="MRN-0042")).exit_code == 0
    shown = run("patients", "show", "--external-id", "MRN-0042")
    assert shown.exit_code == 0 and shown.stdout.startswith("enrollment 1: kyphoplasty, active")
    paused = run("pause", "--external-id", "MRN-0042")
    assert paused.exit_code == 0 and paused.stdout.startswith("paused enrollment 1:")
    assert run("resume", "--external-id", "MRN-0042").exit_code == 0
    edited = run("patients", "edit", "--external-id", "MRN-0042", "--email", "ana@example.net")
    assert edited.exit_code == 0, edited.stderr
    assert run("audit", "--external-id", "MRN-0042", "--since", "7d").exit_code == 0


def test_an_unknown_mrn_or_no_patient_at_all_is_one_line(run: CliRun):
    unknown = run("pause", "--external-id", "MRN-9")
    assert (unknown.exit_code, unknown.stderr) == (
        1,
        "error: --external-id: no patient with external id 'MRN-9'\n",
    )
    neither = run("pause")
    assert (neither.exit_code, neither.stderr) == (
        1,
        "error: ID: give an enrollment id or --external-id\n",
    )


# --- 15: the smaller ones ------------------------------------------------------------------------


def test_cancel_without_a_reason_is_one_line(run: CliRun, enroll_args):
    run(*enroll_args())
    result = run("cancel", "1")
    assert (result.exit_code, result.stderr) == (
        1,
        "error: --reason: is required (why, for the audit trail)\n",
    )


HEADER = "first_name,phone,email,timezone,procedure,discharged_at"
ANA = f"Ana,+12025550143,ana@example.org,America/Chicago,kyphoplasty,{DISCHARGED}"


def test_a_csv_can_come_through_a_pipe(tmp_path, sqlite_template):
    database = tmp_path / "a.db"
    database.write_bytes(sqlite_template.read_bytes())
    env = {"AFTERCARE_DATABASE_URL": f"sqlite:///{database}"}
    for source in ("/dev/stdin", "-"):
        result = aftercare(tmp_path, "import", source, env=env, stdin=f"{HEADER}\n{ANA}\n")
        assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1 rows: enrolled 0, already enrolled 1, 0 bad")


def test_every_bad_field_of_a_row_is_reported_at_once(run: CliRun, tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(f"{HEADER}\nAna,555,not-an-address,CST,kyphoplasty,yesterday\n")
    result = run("import", str(path))
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}:2: ")
    for field in ("phone:", "email:", "timezone:", "discharged_at:"):
        assert field in line, line


def test_a_spreadsheets_header_names_and_semicolons_are_understood(run: CliRun, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "First Name;Phone;E-mail;Time Zone;Procedure;Discharged At;MRN\n"
        f"Ana;+12025550143;ana@example.org;America/Chicago;kyphoplasty;{DISCHARGED};MRN-7\n"
    )
    result = run("import", str(path))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("1 rows: enrolled 1, already enrolled 0, 0 bad")
    assert "MRN MRN-7" in run("patients", "show", "1").stdout


def test_doctor_reports_a_malformed_setting_among_the_other_checks(tmp_path):
    result = aftercare(tmp_path, "doctor", env={"AFTERCARE_MAX_ATTEMPTS": "zero"})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(
        line.startswith("FAIL") and "AFTERCARE_MAX_ATTEMPTS: expected a whole number" in line
        for line in lines
    ), result.stdout
    assert any(" database " in line for line in lines)  # the other checks still ran
    assert result.stderr == ""


def test_doctor_fails_when_urgent_replies_reach_nobody_without_a_staff_email(tmp_path):
    result = aftercare(tmp_path, "doctor")
    assert result.returncode == 1
    assert any(
        line.startswith("FAIL") and "urgent replies reach nobody" in line
        for line in result.stdout.splitlines()
    ), result.stdout
