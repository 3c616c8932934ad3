"""CSV import of a day's discharges: streamed, validated row by row, written in batches.

A bad row is reported with its line number and never written, not even in part; the good rows
around it are enrolled. ``dry_run`` validates everything and writes nothing at all. Memory stays
flat whatever the file size: one batch of rows is held at a time.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session, sessionmaker

from aftercare.config import Settings
from aftercare.enrollment import FIELDS, REQUIRED, EnrollmentRequest, parse_request
from aftercare.errors import AftercareError, InputError
from aftercare.schedules.load import Catalog
from aftercare.store.enrollments import Refused, enroll_many
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

BATCH_SIZE = 1000
# A field longer than this is not a name or an address; the csv module's own limit is 128 KiB.
MAX_FIELD = 4096
# What spreadsheets and clinic systems call our columns (compared lower-case, with spaces,
# hyphens and dots read as underscores); documented in the README.
ALIASES = {
    "first": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "name": "first_name",
    "phone_number": "phone",
    "mobile": "phone",
    "cell": "phone",
    "e_mail": "email",
    "email_address": "email",
    "tz": "timezone",
    "time_zone": "timezone",
    "discharged": "discharged_at",
    "discharge": "discharged_at",
    "discharge_time": "discharged_at",
    "discharged_on": "discharged_at",
    "lang": "language",
    "mrn": "external_id",
    "patient_id": "external_id",
}
# Spreadsheets in locales whose decimal mark is a comma write ";" between fields; some write tabs.
DELIMITERS = (",", ";", "\t")


@dataclass
class ImportReport:
    rows: int = 0
    enrolled: int = 0
    existing: int = 0
    messages: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)


Progress = Callable[[int], None]


def import_csv(
    path: Path,
    factory: sessionmaker[Session],
    catalog: Catalog,
    settings: Settings,
    now: datetime,
    actor: str,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Import ``path``: each batch of good rows in its own transaction.

    A dry run goes through exactly the same enrollment code (so it knows which rows are
    already enrolled and how many messages would be planned) inside one transaction that is
    rolled back at the end: nothing is written.
    """
    report = ImportReport()
    with factory() as session:
        batch: list[tuple[int, EnrollmentRequest]] = []
        for line, row in _rows(path, progress):
            report.rows += 1
            if isinstance(row, InputError):
                report.bad.append((line, str(row)))
                continue
            try:
                batch.append((line, parse_request(row, catalog, now)))
            except InputError as exc:
                report.bad.append((line, _every_problem(row, catalog, now) or str(exc)))
            if len(batch) >= BATCH_SIZE:
                _write(session, batch, settings, now, actor, report, dry_run)
                batch = []
        _write(session, batch, settings, now, actor, report, dry_run)
        session.rollback()  # a dry run's one transaction; nothing is open otherwise
    report.bad.sort()  # refused rows are known only when their batch is written
    return report


def _write(
    session: Session,
    batch: list[tuple[int, EnrollmentRequest]],
    settings: Settings,
    now: datetime,
    actor: str,
    report: ImportReport,
    dry_run: bool,
) -> None:
    if not batch:
        return
    results = enroll_many(session, [request for _, request in batch], settings, now, actor)
    if not dry_run:
        session.commit()
    for (line, _), result in zip(batch, results, strict=True):
        if isinstance(result, Refused):
            report.bad.append((line, str(result.error)))
        elif result.created:
            report.enrolled += 1
            report.messages += result.messages
        else:
            report.existing += 1


def _rows(
    path: Path, progress: Progress | None
) -> Iterator[tuple[int, dict[str, str | None] | InputError]]:
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise AftercareError(f"file: cannot open {path} ({exc.strerror})") from None
    with raw:
        counted = _CountingReader(raw, progress)
        # utf-8-sig: spreadsheets often start the file with a byte-order mark.
        text = io.TextIOWrapper(io.BufferedReader(counted), encoding="utf-8-sig", newline="")
        first = text.readline()
        lines = itertools.chain([first], text) if first else iter(())
        reader = csv.reader(lines, delimiter=_delimiter(first))
        try:
            header = _header(next(reader, None))
            start = reader.line_num + 1  # a record may span lines: report where it starts
            while True:
                try:
                    record = next(reader)
                except StopIteration:
                    return
                except csv.Error:
                    # A field over the csv module's own limit (128 KiB). Only this record is
                    # bad: the reader goes on with the next line. Raising here instead would
                    # abort the file after earlier batches were committed: a partial import
                    # reported as a failed one.
                    if reader.line_num < start:
                        raise  # nothing was consumed; never loop on the same error
                    yield (
                        start,
                        InputError("row", f"has a field longer than {MAX_FIELD} characters"),
                    )
                    start = reader.line_num + 1
                    continue
                if any(cell.strip() for cell in record):
                    yield start, _row(header, record, start)
                start = reader.line_num + 1
        except UnicodeDecodeError:
            raise AftercareError(f"file: line {reader.line_num + 1} is not UTF-8 text") from None
        except csv.Error as exc:
            raise AftercareError(f"file: line {reader.line_num}: {exc}") from None


def _header(record: list[str] | None) -> list[str]:
    if record is None:
        raise AftercareError("file: is empty (expected a header line: " + ",".join(FIELDS) + ")")
    header = [_column(name) for name in record]
    unknown = [name for name in header if name not in FIELDS]
    if unknown:
        raise AftercareError(
            f"file: line 1: unknown column {unknown[0]!r} (columns: {','.join(FIELDS)})"
        )
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise AftercareError(f"file: line 1: missing column {missing[0]!r}")
    return header


def _column(name: str) -> str:
    key = re.sub(r"[\s.\-]+", "_", name.strip().lower()).strip("_")
    return ALIASES.get(key, key)


def _delimiter(header_line: str) -> str:
    """The delimiter that splits the header into the most known columns (a comma on a tie)."""

    def known(delimiter: str) -> int:
        return sum(_column(name) in FIELDS for name in header_line.split(delimiter))

    return max(DELIMITERS, key=known)


# Each field on its own, for reporting: parse_request stops at the first bad one.
_CHECKS: dict[str, Callable[[str], object]] = {
    "first_name": parse_first_name,
    "phone": parse_phone,
    "email": parse_email,
    "timezone": parse_timezone,
    "discharged_at": parse_instant,
    "channels": parse_channels,
    "external_id": parse_external_id,
}


def _every_problem(row: dict[str, str | None], catalog: Catalog, now: datetime) -> str | None:
    """Every bad field of a row, "field: problem; field: problem", or None if each field is
    fine on its own (the problem is between fields, as parse_request says)."""
    problems = []
    for name in FIELDS:
        value = (row.get(name) or "").strip()
        try:
            if not value:
                if name in REQUIRED:
                    raise ValueError("is required")
                continue
            if name == "procedure":
                catalog.get(value)
            elif name == "discharged_at":
                check_discharge_time(parse_instant(value), now)
            elif name in _CHECKS:
                _CHECKS[name](value)
        except (ValueError, KeyError) as exc:
            problems.append(f"{name}: {exc.args[0] if exc.args else 'is not valid'}")
    return "; ".join(problems) or None


def _row(header: list[str], record: list[str], line: int) -> dict[str, str | None] | InputError:
    """A record as a dict, or the error that its shape is wrong."""
    if len(record) != len(header):
        return InputError("row", f"has {len(record)} fields, the header has {len(header)}")
    for name, cell in zip(header, record, strict=True):
        if len(cell) > MAX_FIELD:
            return InputError(name, f"is longer than {MAX_FIELD} characters")
        if "\x00" in cell:
            return InputError(name, "contains a NUL character")
    return dict(zip(header, record, strict=True))


class _CountingReader(io.RawIOBase):
    """Passes bytes through and reports how many have been read, for a progress bar."""

    def __init__(self, inner: IO[bytes], progress: Progress | None) -> None:
        self._inner = inner
        self._progress = progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        if self._progress and data:
            self._progress(len(data))
        return len(data)
