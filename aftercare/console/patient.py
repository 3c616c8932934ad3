"""One patient's page (``/patients/<id>``): who, the timeline as they live it, replies, pain
scores, history, and the actions. Every view is audited; every action is the CLI's function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from aftercare.cli import views
from aftercare.console.audit import audit_view
from aftercare.console.charts import Score, pain_chart
from aftercare.console.context import actor, aftercare_app
from aftercare.console.fields import local_instant, note_from
from aftercare.console.guard import requires
from aftercare.console.helpers import now, parse_iso
from aftercare.db import transaction
from aftercare.errors import AftercareError, InputError, NotFoundError
from aftercare.render import render_message
from aftercare.statuses import StaffRole
from aftercare.store import lifecycle, messages, patients
from aftercare.validation import check_discharge_time, parse_email, parse_instant, parse_phone


def patient(enrollment_id: int) -> str:
    with aftercare_app().sessions() as session:
        try:
            data = views.show_enrollment(session, enrollment_id)
        except NotFoundError:
            abort(404)
    audit_view("patient", enrollment_id)
    shown = request.args.get("text", type=int)
    text = _rendered(enrollment_id, shown) if shown else None
    receipts = _receipts(data["history"])
    scores = [
        Score(parse_iso(p["received_at"]), p["score"])
        for p in data["pain_scores"]
        if p["score"] is not None
    ]
    return render_template(
        "console/patient.html",
        p=data,
        receipts=receipts,
        shown=shown,
        text=text,
        chart=pain_chart(scores, data["timezone"]),
        scores=scores,
        now=now(),
        discharged=parse_iso(data["discharged_at"]),
        languages=_languages(data["procedure"]),
    )


def _languages(procedure: str) -> tuple[str, ...]:
    try:
        return aftercare_app().catalog.get(procedure).languages
    except KeyError:  # a timeline no longer offered: nothing to choose from
        return ()


def _receipts(history: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Events about each message (sent, delivered, undelivered ...), by message id."""
    found: dict[int, list[dict[str, Any]]] = {}
    for event in history:
        if event["message_id"] is not None:
            found.setdefault(event["message_id"], []).append(event)
    return found


def _rendered(enrollment_id: int, message_id: int) -> dict[str, str | None] | None:
    """The words of one message as the patient gets them (rendered now: the timeline as it is)."""
    app = aftercare_app()
    with app.sessions() as session:
        found = messages.to_render(session, enrollment_id, message_id)
    if found is None:
        return None
    try:
        timeline = app.catalog.get(found.procedure)
        step = timeline.step_by_id[found.step]
    except KeyError:
        return {"subject": None, "text": "(this step is no longer in the timeline)"}
    rendered = render_message(
        timeline, step, found.channel, found.recipient, app.clinic, found.due_at
    )
    return {"subject": rendered.subject, "text": rendered.text}


def _act(enrollment_id: int, change: Callable[[Session], str]) -> Response:
    try:
        with transaction(aftercare_app().sessions) as session:
            flash(change(session), "ok")
    except InputError as exc:
        flash(f"{exc.field}: {exc.problem}", "error")
    except AftercareError as exc:
        flash(str(exc).removeprefix("id: "), "error")
    return redirect(url_for("console.patient", enrollment_id=enrollment_id) + "#actions")


@requires(StaffRole.NURSE)
def patient_pause(enrollment_id: int) -> Response:
    return _act(
        enrollment_id,
        lambda s: (
            f"Paused: {lifecycle.pause(s, enrollment_id, _reason(), actor(), now())} "
            "message(s) held."
        ),
    )


@requires(StaffRole.NURSE)
def patient_resume(enrollment_id: int) -> Response:
    return _act(
        enrollment_id,
        lambda s: (
            f"Resumed: {lifecycle.resume(s, enrollment_id, _reason(), actor(), now())} "
            "message(s) pending again."
        ),
    )


@requires(StaffRole.NURSE)
def patient_cancel(enrollment_id: int) -> Response:
    return _act(
        enrollment_id,
        lambda s: (
            f"Cancelled: {lifecycle.cancel(s, enrollment_id, _reason(True) or '', actor(), now())} "
            "message(s) will not be sent."
        ),
    )


@requires(StaffRole.NURSE)
def patient_reschedule(enrollment_id: int) -> Response:
    app, at = aftercare_app(), now()

    def change(session: Session) -> str:
        tz = lifecycle.get_enrollment(session, enrollment_id).patient.timezone
        try:
            when = parse_instant(local_instant(request.form.get("discharged_at", ""), tz))
            check_discharge_time(when, at)
        except ValueError as exc:
            raise InputError("Discharged at", str(exc)) from None
        counts = lifecycle.reschedule(
            session, enrollment_id, when, app.catalog, app.settings, actor(), at, _reason()
        )
        return "Rescheduled: " + ", ".join(f"{v} {k}" for k, v in counts.items()) + "."

    return _act(enrollment_id, change)


@requires(StaffRole.NURSE)
def patient_contact(enrollment_id: int) -> Response:
    """The CLI's ``patients edit``: the same checks, the same store function."""
    app = aftercare_app()

    def change(session: Session) -> str:
        form = {name: (request.form.get(name) or "").strip() for name in LABELS}
        wanted = patients.ContactChange(
            phone=_checked("phone", parse_phone, form["phone"]),
            email=_checked("email", parse_email, form["email"]),
            language=form["language"].lower() or None,
        )
        patient_id = lifecycle.get_enrollment(session, enrollment_id).patient_id
        try:
            changed = patients.edit_contact(
                session, patient_id, wanted, app.catalog, actor(), now()
            )
        except InputError as exc:
            raise InputError(LABELS.get(exc.field, exc.field), exc.problem) from None
        return f"Changed: {', '.join(changed)}." if changed else "Nothing to change."

    return _act(enrollment_id, change)


def _checked(field: str, parse: Callable[[str], str], raw: str) -> str | None:
    """``parse(raw)`` for a field given (None for one left empty), named by its label."""
    if not raw:
        return None
    try:
        return parse(raw)
    except ValueError as exc:
        raise InputError(LABELS[field], str(exc)) from None


# The form's labels for the fields an error names.
LABELS = {"phone": "Mobile phone", "email": "Email", "language": "Language"}


def _reason(required: bool = False) -> str | None:
    """The form's reason, checked like ``--reason`` (an InputError names the field)."""
    try:
        return note_from(request.form, "reason", required)
    except InputError as exc:
        raise InputError("Reason", exc.problem) from None
