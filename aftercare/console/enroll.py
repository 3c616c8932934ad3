"""Enrolling from the console (``/enroll``): the CLI's fields, a preview of every message at the
patient's local time, then the same enrollment code as ``aftercare enroll``."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from aftercare.console.context import actor, aftercare_app
from aftercare.console.fields import local_instant
from aftercare.console.guard import requires
from aftercare.console.helpers import clinic_timezone, now
from aftercare.db import transaction
from aftercare.enrollment import EnrollmentRequest, parse_request
from aftercare.errors import InputError
from aftercare.planner import zone
from aftercare.preview import PreviewedMessage, preview
from aftercare.render import Recipient
from aftercare.statuses import StaffRole
from aftercare.store.enrollments import Refused, enroll_many
from aftercare.validation import parse_timezone

# The form's fields, in order, with their labels; the names are the enrollment contract's.
FIELDS = (
    ("first_name", "First name"),
    ("phone", "Mobile phone"),
    ("email", "Email"),
    ("timezone", "Time zone"),
    ("procedure", "Procedure"),
    ("discharged_at", "Discharged at"),
    ("language", "Language"),
    ("external_id", "External id"),
)


def _defaults() -> dict[str, str]:
    tz = clinic_timezone()
    return {
        "timezone": tz,
        "discharged_at": now().astimezone(zone(tz)).strftime("%Y-%m-%dT%H:%M"),
        "procedure": aftercare_app().catalog.names()[0],
    }


def _typed() -> dict[str, str]:
    return {name: request.form.get(name, "").strip() for name, _ in FIELDS}


def _parsed(values: dict[str, str]) -> EnrollmentRequest:
    """The CLI's parser on what was typed; the discharge time is read in the chosen zone."""
    raw: dict[str, str | None] = dict(values)
    if values["timezone"]:
        # The discharge time is read in this zone, so a wrong zone is the problem to name.
        try:
            parse_timezone(values["timezone"])
        except ValueError as exc:
            raise InputError("timezone", str(exc)) from None
    raw["discharged_at"] = local_instant(values["discharged_at"], values["timezone"])
    return parse_request(raw, aftercare_app().catalog, now())


def _page(values: dict[str, str], errors: dict[str, str], rows: list[PreviewedMessage]) -> str:
    app = aftercare_app()
    return render_template(
        "console/enroll.html",
        fields=FIELDS,
        values=values,
        errors=errors,
        rows=rows,
        procedures=app.catalog.names(),
        languages=sorted({lang for t in app.catalog for lang in t.languages}),
        zones=_common_zones(values.get("timezone", "")),
    )


@requires(StaffRole.NURSE)
def enroll() -> str:
    return _page(_defaults(), {}, [])


@requires(StaffRole.NURSE)
def enroll_submit() -> Response | str | tuple[str, int]:
    values = _typed()
    try:
        request_ = _parsed(values)
    except InputError as exc:
        return _page(values, {exc.field: exc.problem}, []), 422
    if request.form.get("action") != "enroll":
        return _page(values, {}, _preview(request_))
    app, at = aftercare_app(), now()
    with transaction(app.sessions) as session:
        (result,) = enroll_many(session, [request_], app.settings, at, actor())
    if isinstance(result, Refused):
        # Same identity rule as the CLI: a patient on file is changed by an explicit edit only.
        return _page(values, {result.error.field: result.error.problem}, []), 422
    if result.created:
        flash(f"Enrolled: {result.messages} messages planned.", "ok")
    else:
        flash("Already enrolled (nothing changed): this is the existing enrollment.", "ok")
    return redirect(url_for("console.patient", enrollment_id=result.enrollment_id))


def _preview(request_: EnrollmentRequest) -> list[PreviewedMessage]:
    app = aftercare_app()
    recipient = Recipient(
        request_.first_name, request_.timezone, request_.language, request_.discharged_at
    )
    return preview(
        request_.timeline, recipient, request_.channels, app.clinic, app.settings.quiet_hours
    )


def _common_zones(current: str) -> list[str]:
    """Zones offered in the list (any IANA name may be typed): the clinic's first."""
    zones = [clinic_timezone(), *COMMON_ZONES]
    if current and current not in zones:
        zones.insert(0, current)
    return list(dict.fromkeys(zones))


COMMON_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Puerto_Rico",
    "America/Mexico_City",
    "Europe/London",
    "Europe/Madrid",
)
