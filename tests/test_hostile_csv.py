"""``aftercare import`` against hostile files: arbitrary bytes, wrong encodings, formula cells,
NUL and control characters, huge fields. The outcome is always one line per problem and exit
code 1, or a correct import; never a traceback, and a bad row never leaves anything behind."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import count
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from aftercare.app import App
from aftercare.enrollment import FIELDS
from aftercare.importer import MAX_FIELD
from aftercare.models import Patient
from tests.conftest import CliRun
from tests.strategies import (
    FORMULA_PAYLOADS,
    HOSTILE,
    LEGITIMATE_NAMES,
    formula_cell,
    legitimate_name,
    name_with_control,
    nasty_text,
    sqlite_only,
)

RowCounts = Callable[[], dict[str, int]]
# The CSV's columns, in the documented order (the optional ones after them stay out).
COLUMNS = FIELDS[: FIELDS.index("external_id") + 1]
HEADER = ",".join(COLUMNS)
# The csv reader counts a line at each of these, inside quoted cells too.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A different valid US number for every row any example writes, so rows never merge by identity.
_numbers = count(1000)


def good_row(**cells: str) -> dict[str, str]:
    row = {
        "first_name": "Ana",
        "phone": f"+1202555{next(_numbers) % 10000:04d}",
        "email": "",
        "timezone": "America/Chicago",
        "procedure": "kyphoplasty",
        "discharged_at": "2026-11-23T10:30-06:00",
        "language": "",
        "channels": "",
        "external_id": "",
    }
    return row | cells


def csv_line(row: dict[str, str]) -> str:
    """One record, every cell quoted (so commas, quotes and newlines in a cell stay in it)."""
    return ",".join('"' + row[c].replace('"', '""') + '"' for c in COLUMNS)


def write(tmp_path: Path, data: bytes, name: str = "discharges.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def assert_clear_errors(stderr: str, path: Path) -> None:
    """Every line of stderr is one clear error: the file's, or a row's naming its field."""
    for line in stderr.splitlines():
        assert line.startswith(("error: ", f"{path}:")), line
        assert "Traceback" not in line


def stored_phones(app: App) -> set[str]:
    with app.sessions() as session:
        return set(session.scalars(select(Patient.phone)))


@sqlite_only
@HOSTILE
@given(data=st.binary(max_size=400), with_header=st.booleans())
def test_arbitrary_bytes_give_clear_errors_or_an_import_never_a_traceback(
    run: CliRun, tmp_path: Path, row_counts: RowCounts, data: bytes, with_header: bool
) -> None:
    path = write(tmp_path, (HEADER.encode() + b"\n" if with_header else b"") + data)
    before = row_counts()

    result = run("import", str(path))

    assert result.exit_code in (0, 1), result.output
    assert_clear_errors(result.stderr, path)
    if result.stderr.startswith("error: "):  # the file as a whole was refused
        assert result.stderr.count("\n") == 1
        assert row_counts() == before


# One field of a row replaced with hostile text; some such rows are still valid (an empty
# language, an email with odd but legal characters), most are not.
hostile_field = st.tuples(st.sampled_from(COLUMNS), st.one_of(nasty_text, formula_cell))


@sqlite_only
@HOSTILE
@given(rows=st.lists(st.one_of(st.none(), hostile_field), min_size=1, max_size=8))
def test_a_bad_row_leaves_nothing_behind_and_every_other_row_is_enrolled(
    run: CliRun, app: App, tmp_path: Path, row_counts: RowCounts, rows: list[tuple[str, str] | None]
) -> None:
    # ``None`` is a good row; the phone of each row says which row a stored patient came from.
    written = []
    for change in rows:
        row = good_row()
        if change is not None:
            column, value = change
            # A unique MRN per row: two rows with the same one are one patient (by design).
            row[column] = value + str(next(_numbers)) if column == "external_id" else value
        written.append(row)
    path = write(tmp_path, "\n".join([HEADER, *map(csv_line, written)]).encode() + b"\n")
    before_phones = stored_phones(app)
    before = row_counts()

    result = run("import", str(path), "--json")

    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    bad_lines = {e["line"] for e in report["errors"]}
    for error in report["errors"]:
        field, _, problem = error["error"].partition(": ")
        assert field in (*COLUMNS, "row") and problem, error
    # Lines are counted in the file, and a quoted cell may hold newlines.
    line = 2
    new_phones = stored_phones(app) - before_phones
    for row, change in zip(written, rows, strict=True):
        if change is None:
            assert line not in bad_lines, f"a good row was refused: {report['errors']}"
        if line in bad_lines:
            assert row["phone"] not in new_phones
        elif row["phone"].startswith("+1202555"):
            assert row["phone"] in new_phones, f"row at line {line} was neither stored nor named"
        line += len(_LINE_BREAK.findall(csv_line(row))) + 1
    after = row_counts()
    assert after["patient"] - before["patient"] == report["enrolled"]
    assert after["enrollment"] - before["enrollment"] == report["enrolled"]
    assert after["message"] - before["message"] == report["messages"]
    assert result.exit_code == (1 if bad_lines else 0)


@sqlite_only
@HOSTILE
@given(payload=formula_cell)
def test_a_first_name_that_looks_like_a_formula_is_refused_naming_the_field(
    run: CliRun, tmp_path: Path, row_counts: RowCounts, payload: str
) -> None:
    path = write(tmp_path, f"{HEADER}\n{csv_line(good_row(first_name=payload))}\n".encode())
    before = row_counts()

    result = run("import", str(path))

    assert result.exit_code == 1
    (error,) = result.stderr.splitlines()
    assert error.startswith(f"{path}:2: first_name: ")
    assert row_counts() == before


def test_formula_cells_in_the_other_columns_are_kept_as_plain_text(
    run: CliRun, app: App, tmp_path: Path
) -> None:
    # aftercare writes no CSV or spreadsheet (exports are JSON and terminal tables), so an MRN
    # that starts with "=" is data to keep exactly, not a formula to rewrite; neutralising it
    # would belong to whatever later writes a spreadsheet.
    rows = [good_row(external_id=payload) for payload in FORMULA_PAYLOADS]
    path = write(tmp_path, "\n".join([HEADER, *map(csv_line, rows)]).encode())

    result = run("import", str(path))

    assert result.exit_code == 0, result.output
    with app.sessions() as session:
        stored = set(session.scalars(select(Patient.external_id)))
    assert stored == set(FORMULA_PAYLOADS)
    listed = json.loads(run("patients", "show", "1", "--json").stdout)
    assert listed["external_id"] == FORMULA_PAYLOADS[0]


@sqlite_only
@HOSTILE
@given(name=legitimate_name)
def test_names_in_any_script_and_with_emoji_are_stored_verbatim(
    run: CliRun, app: App, tmp_path: Path, name: str
) -> None:
    row = good_row(first_name=name)
    path = write(tmp_path, f"{HEADER}\n{csv_line(row)}\n".encode())

    result = run("import", str(path))

    assert result.exit_code == 0, result.output
    with app.sessions() as session:
        stored = session.scalar(select(Patient.first_name).where(Patient.phone == row["phone"]))
    assert stored == name


def test_arabic_and_hebrew_names_round_trip_on_both_databases(
    run: CliRun, app: App, tmp_path: Path
) -> None:
    rows = [good_row(first_name=name) for name in LEGITIMATE_NAMES]
    path = write(tmp_path, "\n".join([HEADER, *map(csv_line, rows)]).encode())

    result = run("import", str(path), "--json")

    assert result.exit_code == 0, result.output
    with app.sessions() as session:
        stored = {p: n for p, n in session.execute(select(Patient.phone, Patient.first_name))}
    assert stored == {row["phone"]: row["first_name"] for row in rows}
    shown = json.loads(run("patients", "list", "--json").stdout)
    assert {r["first_name"] for r in shown} >= set(LEGITIMATE_NAMES) - {""}


@sqlite_only
@HOSTILE
@given(name=name_with_control)
def test_a_name_with_control_or_bidi_override_characters_is_refused(
    run: CliRun, tmp_path: Path, row_counts: RowCounts, name: str
) -> None:
    path = write(tmp_path, f"{HEADER}\n{csv_line(good_row(first_name=name))}\n".encode())
    before = row_counts()

    result = run("import", str(path))

    assert result.exit_code == 1
    (error,) = result.stderr.splitlines()
    assert re.match(rf"{re.escape(str(path))}:2: first_name: (contains|is empty)", error), error
    assert row_counts() == before


@sqlite_only
@HOSTILE
@given(column=st.sampled_from(COLUMNS), at=st.integers(min_value=0, max_value=5))
def test_a_nul_in_any_cell_is_reported_naming_its_column(
    run: CliRun, tmp_path: Path, row_counts: RowCounts, column: str, at: int
) -> None:
    row = good_row()
    row[column] = row[column][:at] + "\x00" + row[column][at:]
    path = write(tmp_path, f"{HEADER}\n{csv_line(row)}\n".encode())
    before = row_counts()

    result = run("import", str(path))

    assert result.exit_code == 1
    assert result.stderr == f"{path}:2: {column}: contains a NUL character\n"
    assert row_counts() == before


_ENCODINGS = ["latin-1", "cp1252", "utf-16", "utf-16-le", "utf-16-be", "utf-32"]


@sqlite_only
@HOSTILE
@given(
    encoding=st.sampled_from(_ENCODINGS),
    name=st.sampled_from(["José", "Zoë", "Ñandú", "Müller", "Anaïs"]),
    before_rows=st.integers(min_value=0, max_value=3),
)
def test_a_file_in_another_encoding_is_refused_whole(
    run: CliRun,
    tmp_path: Path,
    row_counts: RowCounts,
    encoding: str,
    name: str,
    before_rows: int,
) -> None:
    rows = [good_row() for _ in range(before_rows)] + [good_row(first_name=name)]
    text = "\n".join([HEADER, *map(csv_line, rows)]) + "\n"
    path = write(tmp_path, text.encode(encoding))
    before = row_counts()

    result = run("import", str(path))

    assert result.exit_code == 1
    assert re.fullmatch(r"error: file: line \d+ is not UTF-8 text\n", result.stderr)
    assert row_counts() == before


@sqlite_only
@HOSTILE
@given(garbage=st.binary(min_size=1, max_size=8), line=st.integers(min_value=0, max_value=4))
def test_invalid_utf8_anywhere_leaves_nothing_written(
    run: CliRun, tmp_path: Path, row_counts: RowCounts, garbage: bytes, line: int
) -> None:
    rows = [csv_line(good_row()).encode() for _ in range(5)]
    # A lone continuation byte, or a lead byte without its continuation: never valid UTF-8.
    rows[line] += b"\x80" + garbage
    path = write(tmp_path, HEADER.encode() + b"\n" + b"\n".join(rows) + b"\n")
    before = row_counts()

    result = run("import", str(path))

    assert result.exit_code == 1
    assert re.fullmatch(r"error: file: line \d+ is not UTF-8 text\n", result.stderr)
    assert row_counts() == before


def test_a_utf8_file_with_a_byte_order_mark_and_crlf_lines_is_read(
    run: CliRun, app: App, tmp_path: Path
) -> None:
    rows = [good_row(first_name=n) for n in ("محمد", "שרה", "Zoë")]
    text = "\r\n".join([HEADER, *map(csv_line, rows)]) + "\r\n"
    path = write(tmp_path, b"\xef\xbb\xbf" + text.encode())

    result = run("import", str(path))

    assert result.exit_code == 0, result.output
    assert {r["phone"] for r in rows} <= stored_phones(app)


@sqlite_only
@HOSTILE
@given(column=st.sampled_from(COLUMNS), size=st.sampled_from([MAX_FIELD + 1, 20_000, 200_000]))
def test_a_huge_cell_is_one_bad_row_and_the_rows_around_it_are_enrolled(
    run: CliRun, app: App, tmp_path: Path, row_counts: RowCounts, column: str, size: int
) -> None:
    first, last = good_row(), good_row()
    huge = good_row()
    huge[column] = "x" * size
    path = write(tmp_path, "\n".join([HEADER, *map(csv_line, (first, huge, last))]).encode())
    before = row_counts()

    result = run("import", str(path))

    assert result.exit_code == 1
    (error,) = result.stderr.splitlines()
    assert error.startswith(f"{path}:3: ")
    assert "longer than 4096 characters" in error
    assert {first["phone"], last["phone"]} <= stored_phones(app)
    assert huge["phone"] not in stored_phones(app)
    assert row_counts()["patient"] == before["patient"] + 2


def test_a_huge_cell_after_a_committed_batch_is_still_just_one_bad_row(
    run: CliRun, app: App, tmp_path: Path
) -> None:
    # More rows than one batch come first: before the fix the csv module's field limit aborted
    # the file with "error: file: ..." after those rows were committed, a partial import
    # reported as a failed one.
    lines = [
        f"P{i},+1310555{i:04d},,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,"
        for i in range(1001)
    ]
    lines.append("Big,+13105559999,,America/Chicago,kyphoplasty," + "x" * 200_000 + ",,,")
    lines.append("Cy,+13105559998,,America/Chicago,kyphoplasty,2026-11-23T10:30-06:00,,,")
    path = write(tmp_path, ("\n".join([HEADER, *lines]) + "\n").encode())

    result = run("import", str(path), "--json")

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["errors"] == [
        {"line": 1003, "error": f"row: has a field longer than {MAX_FIELD} characters"}
    ]
    assert report["enrolled"] == 1002
    assert "+13105559998" in stored_phones(app)


def test_an_unclosed_quote_is_one_bad_row_at_the_line_where_it_starts(
    run: CliRun, app: App, tmp_path: Path, row_counts: RowCounts
) -> None:
    good = good_row()
    path = write(
        tmp_path, f'{HEADER}\n{csv_line(good)}\n"Eve,+12025550111,,UTC\nmore text\n'.encode()
    )

    result = run("import", str(path))

    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:3: row: has 1 fields")
    assert stored_phones(app) == {good["phone"]}
    assert row_counts()["patient"] == 1
