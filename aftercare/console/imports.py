"""CSV import from the console (``/import``): upload, a dry run row by row, then confirm.

Both steps are ``importer.import_csv``, the code behind ``aftercare import``: the dry run writes
nothing, the confirmed run enrolls the good rows. Between the two the upload waits in a private
temporary folder under a random name kept in the signed-in session; it is deleted when confirmed,
and uploads left behind are deleted after an hour.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

from flask import flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response

from aftercare import importer
from aftercare.console.context import actor, aftercare_app
from aftercare.console.guard import requires
from aftercare.console.helpers import now
from aftercare.errors import AftercareError
from aftercare.importer import ImportReport
from aftercare.statuses import StaffRole

MAX_UPLOAD = 20 * 1024 * 1024  # a day's discharges are a few kilobytes; this is years of them
KEEP_SECONDS = 3600
_KEY = "import_upload"


def allow_upload() -> None:
    """The app's body limit is for webhooks (64 KiB); the import form takes a CSV file."""
    if request.endpoint == "console.import_upload":
        request.max_content_length = MAX_UPLOAD + 64 * 1024  # the file and the form around it
        request.max_form_memory_size = MAX_UPLOAD


def _folder() -> Path:
    folder = Path(tempfile.gettempdir()) / "aftercare-console-imports"
    folder.mkdir(mode=0o700, exist_ok=True)
    for old in folder.glob("*.csv"):
        if old.stat().st_mtime < time.time() - KEEP_SECONDS:
            old.unlink(missing_ok=True)
    return folder


def _rows(report: ImportReport) -> list[dict[str, object]]:
    """Each bad row as line, field and problem (the importer words them "field: problem")."""
    rows = []
    for line, error in report.bad:
        field, _, problem = error.partition(": ")
        rows.append({"line": line, "field": field, "problem": problem or field})
    return rows


def _run(path: Path, dry_run: bool) -> ImportReport:
    app = aftercare_app()
    return importer.import_csv(
        path, app.sessions, app.catalog, app.settings, now(), actor(), dry_run=dry_run
    )


@requires(StaffRole.NURSE)
def import_csv() -> str:
    return render_template("console/import.html", report=None, rows=[], error=None)


@requires(StaffRole.NURSE)
def import_upload() -> str | tuple[str, int]:
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template(
            "console/import.html", report=None, rows=[], error="File: choose a CSV"
        ), 422
    data = upload.stream.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        error = f"File: is larger than {MAX_UPLOAD // (1024 * 1024)} MB"
        return render_template("console/import.html", report=None, rows=[], error=error), 413
    name = secrets.token_urlsafe(16)
    path = _folder() / f"{name}.csv"
    path.write_bytes(data)
    try:
        report = _run(path, dry_run=True)
    except AftercareError as exc:
        path.unlink(missing_ok=True)
        error = str(exc).replace("file: ", "File: ", 1)
        return render_template("console/import.html", report=None, rows=[], error=error), 422
    session[_KEY] = name
    return render_template("console/import.html", report=report, rows=_rows(report), error=None)


@requires(StaffRole.NURSE)
def import_confirm() -> Response:
    name = session.pop(_KEY, None)
    path = _folder() / f"{name}.csv" if isinstance(name, str) and name.isascii() else None
    if path is None or not path.is_file() or path.parent != _folder():
        flash("That upload has expired: choose the file again.", "error")
        return redirect(url_for("console.import_csv"))
    try:
        report = _run(path, dry_run=False)
    finally:
        path.unlink(missing_ok=True)
    skipped = f", {len(report.bad)} bad row(s) skipped" if report.bad else ""
    flash(
        f"Imported: {report.enrolled} enrolled, {report.existing} already enrolled{skipped}.",
        "ok",
    )
    return redirect(url_for("console.patients"))
