"""The roster (``/patients``): every enrollment with where it stands; filters, search, CSV.

Search terms are names and phone digits: they travel in a POST body, never in the URL (where
browser history, proxies and referrers would keep them), and are never logged; the audit trail
records that the roster was exported, not what was typed. The filters (status, procedure, needs
attention) are no patient data and may be in a link.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime

from flask import Response, render_template, request, stream_with_context

from aftercare.cli.views import iso, mask_phone
from aftercare.console.audit import audit_action
from aftercare.console.context import aftercare_app
from aftercare.console.helpers import now
from aftercare.console.timefmt import day_number, patient_local
from aftercare.statuses import EnrollmentStatus, EventKind
from aftercare.store import roster
from aftercare.store.roster import RosterFilter, RosterRow

CSV_COLUMNS = (
    "enrollment_id",
    "first_name",
    "external_id",
    "phone",
    "status",
    "procedure",
    "day",
    "timezone",
    "next_message_local",
    "next_message_utc",
    "last_reply_utc",
    "last_pain_score",
    "problems",
)


def _wanted() -> RosterFilter:
    args = request.form if request.method == "POST" else request.args
    status = args.get("status") or None
    procedure = args.get("procedure") or None
    return RosterFilter(
        status=status if status in set(EnrollmentStatus) else None,
        procedure=procedure if procedure in aftercare_app().catalog.names() else None,
        needs_attention=args.get("attention") == "1",
        search=(request.form.get("q") or "").strip()[:100] or None,
    )


def patients() -> str:
    wanted = _wanted()
    page_number = request.args.get("page", default=1, type=int) or 1
    with aftercare_app().sessions() as session:
        page = roster.roster_page(session, wanted, page_number)
    return render_template(
        "console/patients.html",
        page=page,
        wanted=wanted,
        statuses=[s.value for s in EnrollmentStatus],
        procedures=aftercare_app().catalog.names(),
        now=now(),
    )


def patients_csv() -> Response:
    wanted = _wanted()
    audit_action(EventKind.ROSTER_EXPORTED, filtered=wanted != RosterFilter())
    at = now()

    def lines() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        with aftercare_app().sessions() as session:
            for row in roster.roster_all(session, wanted):
                writer.writerow(csv_row(row, at))
                yield out.getvalue()
                out.seek(0)
                out.truncate()
        yield out.getvalue()

    headers = {"Content-Disposition": 'attachment; filename="patients.csv"'}
    return Response(stream_with_context(lines()), mimetype="text/csv", headers=headers)


def csv_row(row: RosterRow, at: datetime) -> list[str]:
    return [
        str(row.enrollment_id),
        _cell(row.first_name),
        _cell(row.external_id or ""),
        mask_phone(row.phone),
        row.status,
        row.procedure,
        str(day_number(row.discharged_at, row.timezone, at)),
        row.timezone,
        patient_local(row.next_due, row.timezone) if row.next_due else "",
        iso(row.next_due) or "",
        iso(row.last_reply_at) or "",
        "" if row.last_pain is None else str(row.last_pain),
        "; ".join(row.problems),
    ]


def _cell(text: str) -> str:
    """A spreadsheet runs a cell starting with = + - @ as a formula: such names get a quote."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
