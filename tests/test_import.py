"""``aftercare import FILE.csv``: a day's discharges at once; bad rows are named and skipped."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from aftercare.app import App
from aftercare.models import Patient
from tests.conftest import CliRun

RowCounts = Callable[[], dict[str, int]]
HEADER = "first_name,phone,email,timezone,procedure,discharged_at,language,channels,external_id"
ANA = "Ana,+12025550143,ana@example.org,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,en,,"
BO = "Bo,+12025550178,,America/New_York,vertebroplasty,2026-11-23T09:15-05:00,es,sms,MRN-2"
CY = "Cy,+13105550111,cy@example.org,America/Los_Angeles,kyphoplasty,2026-11-22T16:00-08:00,,,"
GOOD = (ANA, BO, CY)


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a CSV file with the standard header (unless told otherwise) and these lines."""

    def write(*lines: str, header: str | None = HEADER, prefix: bytes = b"") -> Path:
        path = tmp_path / "discharges.csv"
        text = "\n".join(([header] if header is not None else []) + list(lines))
        path.write_bytes(prefix + (text + "\n").encode() if text else prefix)
        return path

    return write


def names(app: App) -> set[str]:
    with app.sessions() as session:
        return set(session.scalars(select(Patient.first_name)))


def import_json(run: CliRun, path: Path, *flags: str) -> dict[str, object]:
    result = run("import", str(path), "--json", *flags)
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_a_good_file_enrolls_every_row(
    run: CliRun, app: App, csv_file: Callable[..., Path], row_counts: RowCounts
) -> None:
    path = csv_file(*GOOD)

    result = run("import", str(path))

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    counts = row_counts()
    assert result.stdout == (
        f"3 rows: enrolled 3, already enrolled 0, 0 bad; {counts['message']} messages planned\n"
    )
    assert (counts["patient"], counts["enrollment"]) == (3, 3)
    assert names(app) == {"Ana", "Bo", "Cy"}


def test_imported_patients_get_the_same_messages_as_enrolled_ones(
    run: CliRun, csv_file: Callable[..., Path], enroll_args: Callable[..., list[str]]
) -> None:
    run("import", str(csv_file(ANA)))
    imported = json.loads(run("patients", "show", "1", "--json").stdout)

    enrolled = json.loads(run(*enroll_args(first_name="Di", phone="+12025550100"), "--json").stdout)

    def plan(data: dict[str, list[dict[str, object]]]) -> list[tuple[object, ...]]:
        return [(m["step"], m["occurrence"], m["channel"], m["due_at"]) for m in data["messages"]]

    assert plan(imported) == plan(enrolled)


def test_bad_rows_are_reported_by_line_and_the_good_rows_are_still_enrolled(
    run: CliRun,
    app: App,
    csv_file: Callable[..., Path],
    row_counts: RowCounts,
    tmp_path: Path,
    run_on: Callable[[str], CliRun],
) -> None:
    path = csv_file(
        ANA,
        "Eve,+1202555,,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,",
        BO,
        "Fay,+12025550199,,EST,kyphoplasty,2026-11-23T10:30-06:00,,,",
        CY,
        "Gus,+12025550188,,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,,extra",
    )

    result = run("import", str(path))

    assert result.exit_code == 1
    errors = result.stderr.splitlines()
    assert errors[0].startswith(f"{path}:3: phone: ")
    assert errors[1].startswith(f"{path}:5: timezone: 'EST' is not an IANA time zone")
    assert errors[2].startswith(f"{path}:7: row: has 10 fields")
    assert len(errors) == 3
    assert "3 rows: enrolled 3" not in result.stdout
    assert "6 rows: enrolled 3, already enrolled 0, 3 bad" in result.stdout
    assert names(app) == {"Ana", "Bo", "Cy"}
    counts = row_counts()
    assert (counts["patient"], counts["enrollment"]) == (3, 3)
    assert counts["message"] == messages_planned_for(GOOD, tmp_path / "good-only", run_on)


def messages_planned_for(
    lines: tuple[str, ...], folder: Path, run_on: Callable[[str], CliRun]
) -> int:
    """How many messages importing just these lines plans, on a database of its own."""
    folder.mkdir()
    path = folder / "good.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    result = run_on(f"sqlite:///{folder / 'aftercare.db'}")("import", str(path), "--json")
    assert result.exit_code == 0, result.output
    planned: int = json.loads(result.stdout)["messages"]
    return planned


def test_line_numbers_count_the_lines_of_quoted_multi_line_fields_and_blank_lines(
    run: CliRun, app: App, csv_file: Callable[..., Path]
) -> None:
    path = csv_file(
        '"Ana\nMaria",+12025550143,,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,',
        "",
        "Eve,+1202555,,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,",
    )

    result = run("import", str(path))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:5: phone: ")
    assert names(app) == {"Ana Maria"}


def test_a_bad_multi_line_record_is_reported_at_the_line_where_it_starts(
    run: CliRun, csv_file: Callable[..., Path]
) -> None:
    path = csv_file(
        ANA,
        '"Eve\nLynn",+1202555,,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,',
    )

    result = run("import", str(path))

    assert result.stderr.startswith(f"{path}:3: phone: ")


def test_a_dry_run_writes_nothing_yet_reports_what_it_would_do(
    run: CliRun, csv_file: Callable[..., Path], row_counts: RowCounts
) -> None:
    path = csv_file(*GOOD)

    result = run("import", str(path), "--dry-run")

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("3 rows: would enroll 3, already enrolled 0, 0 bad")
    assert set(row_counts().values()) == {0}


def test_a_dry_run_reports_bad_rows_and_still_writes_nothing(
    run: CliRun, csv_file: Callable[..., Path], row_counts: RowCounts
) -> None:
    path = csv_file(ANA, "Eve,+1202555,,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,")

    result = run("import", str(path), "--dry-run")

    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:3: phone: ")
    assert result.stdout.startswith("2 rows: would enroll 1, already enrolled 0, 1 bad")
    assert set(row_counts().values()) == {0}


def test_a_dry_run_does_not_create_a_new_sqlite_database(
    tmp_path: Path, run_on: Callable[[str], CliRun], csv_file: Callable[..., Path]
) -> None:
    database = tmp_path / "never.db"

    result = run_on(f"sqlite:///{database}")("import", str(csv_file(*GOOD)), "--dry-run")

    assert result.exit_code == 0, result.output
    assert not database.exists()


def test_a_dry_run_of_a_file_already_imported_says_the_rows_are_already_enrolled(
    run: CliRun, csv_file: Callable[..., Path]
) -> None:
    path = csv_file(*GOOD)
    run("import", str(path))

    result = run("import", str(path), "--dry-run")

    assert result.stdout.startswith("3 rows: would enroll 0, already enrolled 3, 0 bad")


@pytest.mark.parametrize(
    ("header", "says"),
    [
        (HEADER + ",ward", "error: file: line 1: unknown column 'ward'"),
        (HEADER.replace("phone,", ""), "error: file: line 1: missing column 'phone'"),
        (None, "error: file: is empty"),
    ],
    ids=["unknown-column", "missing-column", "empty-file"],
)
def test_a_file_with_a_bad_header_is_refused_whole(
    run: CliRun,
    csv_file: Callable[..., Path],
    row_counts: RowCounts,
    header: str | None,
    says: str,
) -> None:
    path = csv_file(*([] if header is None else GOOD), header=header)

    result = run("import", str(path))

    assert result.exit_code == 1
    assert result.stderr.startswith(says)
    assert result.stderr.count("\n") == 1
    assert result.stdout == ""
    assert set(row_counts().values()) == {0}


def test_a_file_that_is_not_utf8_is_refused_whole(
    run: CliRun, tmp_path: Path, row_counts: RowCounts
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "\n".join([HEADER, ANA, ANA.replace("Ana", "José").replace("0143", "0144")]).encode(
            "latin-1"
        )
    )

    result = run("import", str(path))

    assert result.exit_code == 1
    assert result.stderr == "error: file: line 3 is not UTF-8 text\n"
    assert set(row_counts().values()) == {0}


def test_a_byte_that_is_not_utf8_late_in_a_big_file_still_leaves_nothing_written(
    run: CliRun, tmp_path: Path, row_counts: RowCounts
) -> None:
    # More rows than one batch of the importer, so a streaming import would have committed some.
    rows = [
        f"P{i},+1202555{i:04d},,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,"
        for i in range(1001)
    ]
    path = tmp_path / "big.csv"
    path.write_bytes(
        "\n".join([HEADER, *rows, ""]).encode()
        + "José,+12025559999,,UTC,kyphoplasty,,,,".encode("cp1252")
    )

    result = run("import", str(path))

    assert result.exit_code == 1
    assert result.stderr == "error: file: line 1003 is not UTF-8 text\n"
    assert set(row_counts().values()) == {0}


def test_a_missing_file_is_a_one_line_error(run: CliRun, tmp_path: Path) -> None:
    result = run("import", str(tmp_path / "nowhere.csv"))

    assert result.exit_code == 1
    assert result.stderr.startswith("error: file: cannot open")
    assert result.stderr.count("\n") == 1


def test_importing_the_same_file_again_changes_nothing(
    run: CliRun, csv_file: Callable[..., Path], row_counts: RowCounts
) -> None:
    path = csv_file(*GOOD)
    run("import", str(path))
    before = row_counts()

    result = run("import", str(path))

    assert result.exit_code == 0, result.output
    assert result.stdout == "3 rows: enrolled 0, already enrolled 3, 0 bad; 0 messages planned\n"
    after = row_counts()
    assert {t: after[t] for t in ("patient", "enrollment", "message")} == {
        t: before[t] for t in ("patient", "enrollment", "message")
    }


def test_the_same_patient_twice_in_one_file_is_enrolled_once(
    run: CliRun, csv_file: Callable[..., Path], row_counts: RowCounts
) -> None:
    result = run("import", str(csv_file(ANA, BO, ANA)))

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("3 rows: enrolled 2, already enrolled 1, 0 bad")
    assert (row_counts()["patient"], row_counts()["enrollment"]) == (2, 2)


def test_a_header_with_a_byte_order_mark_is_read(
    run: CliRun, app: App, csv_file: Callable[..., Path]
) -> None:
    path = csv_file(*GOOD, prefix=b"\xef\xbb\xbf")  # what spreadsheets save as "CSV UTF-8"

    result = run("import", str(path))

    assert result.exit_code == 0, result.output
    assert names(app) == {"Ana", "Bo", "Cy"}


def test_header_names_are_read_in_any_order_and_case(
    run: CliRun, app: App, csv_file: Callable[..., Path]
) -> None:
    header = "Procedure,First_Name,Phone,Timezone,Discharged_At"
    path = csv_file(
        "kyphoplasty,Ana,+12025550143,America/Chicago,2026-11-23T10:30-06:00", header=header
    )

    result = run("import", str(path))

    assert result.exit_code == 0, result.output
    assert names(app) == {"Ana"}


def test_json_output_reports_counts_and_each_bad_line(
    run: CliRun, csv_file: Callable[..., Path], row_counts: RowCounts
) -> None:
    path = csv_file(ANA, "Eve,+1202555,,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,")

    result = run("import", str(path), "--json")

    assert result.exit_code == 1
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert data == {
        "dry_run": False,
        "rows": 2,
        "enrolled": 1,
        "existing": 0,
        "messages": row_counts()["message"],
        "errors": [{"line": 3, "error": data["errors"][0]["error"]}],
    }
    assert data["errors"][0]["error"].startswith("phone: ")


def test_json_output_of_a_dry_run_says_so(run: CliRun, csv_file: Callable[..., Path]) -> None:
    data = import_json(run, csv_file(*GOOD), "--dry-run")

    assert data["dry_run"] is True
    assert (data["rows"], data["enrolled"], data["errors"]) == (3, 3, [])
