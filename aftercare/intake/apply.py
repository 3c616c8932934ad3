"""Carrying out an intake request through the code staff use: the same enrollment (identity rules,
idempotency), cancel and contact edit as the CLI, in the caller's transaction.

Each function returns an ``Outcome``: what happened, for the audit log and the sender's answer.
A value that fails validation raises FieldError naming the field in the sender's terms
(``PID-13``), and the caller rolls back, so nothing is half-written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from aftercare.config import Settings
from aftercare.enrollment import parse_request
from aftercare.errors import InputError
from aftercare.intake.hl7v2 import DATA_TYPE_ERROR, REQUIRED_FIELD_MISSING, FieldError
from aftercare.intake.requests import (
    CancelVisit,
    Discharge,
    MergePatients,
    Parsed,
    ScheduledAdmission,
    UpdateContact,
)
from aftercare.schedules.load import Catalog
from aftercare.statuses import IntakeOutcome
from aftercare.store import intake as store
from aftercare.store import lifecycle, patients
from aftercare.store.enrollments import Refused, enroll_many
from aftercare.store.patients import ContactChange
from aftercare.validation import parse_email, parse_phone


@dataclass(frozen=True)
class Outcome:
    kind: IntakeOutcome
    enrollment_ids: tuple[int, ...] = ()
    # Why, in words that hold no patient data ("procedure CPT 27447 is not followed").
    note: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    session: Session
    catalog: Catalog
    settings: Settings
    timezone: str  # the sending facility's zone: patients are enrolled in it
    now: datetime
    actor: str


def apply(parsed: Parsed, ctx: Context) -> Outcome:
    request = parsed.request
    if isinstance(request, Discharge):
        return _discharge(parsed, request, ctx)
    if isinstance(request, ScheduledAdmission):
        # Enrolling ahead needs pre-procedure steps in the timelines (issue 15), not there yet.
        return Outcome(IntakeOutcome.IGNORED, note="pre-procedure steps are not offered")
    if isinstance(request, CancelVisit):
        return _cancel(parsed, request, ctx)
    if isinstance(request, UpdateContact):
        return _update(parsed, request, ctx)
    return _merge(request, ctx)


def _discharge(parsed: Parsed, request: Discharge, ctx: Context) -> Outcome:
    if request.procedure is None:
        return Outcome(
            IntakeOutcome.IGNORED, note=f"procedure {request.procedure_code} is not followed"
        )
    timeline = ctx.catalog.get(request.procedure)
    contact = request.contact
    # A language the timeline is not written in gets its first one: reminders in English beat
    # none, and staff see the fallback in the audit log.
    language = contact.language if contact.language in timeline.languages else None
    on_file = store.patient_by_external_id(ctx.session, request.external_id)
    fields = {
        "first_name": contact.first_name,
        "phone": contact.phone,
        "email": contact.email,
        # A patient on file keeps their zone; a new one lives near the hospital.
        "timezone": store.timezone_of(ctx.session, on_file) if on_file else ctx.timezone,
        "procedure": timeline.name,
        "discharged_at": request.discharged_at.isoformat(),
        "language": language,
        "external_id": request.external_id,
    }
    try:
        enrollment_request = parse_request(fields, ctx.catalog, ctx.now)
    except InputError as exc:
        code = REQUIRED_FIELD_MISSING if exc.problem == "is required" else DATA_TYPE_ERROR
        raise FieldError(parsed.source_of(exc.field), exc.problem, code) from None
    detail: dict[str, Any] = {"procedure": request.procedure_code}
    if on_file is not None:
        # The hospital's record is the newer one: its contact details are taken first, through
        # the audited edit staff use, so the enrollment below matches the patient on file.
        change = ContactChange(
            phone=enrollment_request.phone,
            email=enrollment_request.email,
            language=language,
        )
        try:
            edited = patients.edit_contact(
                ctx.session, on_file, change, ctx.catalog, ctx.actor, ctx.now
            )
        except InputError as exc:
            raise FieldError(parsed.source_of(exc.field), exc.problem) from None
        if edited:
            detail["contact_edited"] = edited
    (result,) = enroll_many(ctx.session, [enrollment_request], ctx.settings, ctx.now, ctx.actor)
    if isinstance(result, Refused):  # e.g. another discharge time while one is open
        error = result.error
        raise FieldError(parsed.source_of(error.field), error.problem)
    detail["messages"] = result.messages
    if contact.language and language is None:
        detail["language"] = f"{contact.language} not offered; {timeline.languages[0]} used"
    kind = IntakeOutcome.ENROLLED if result.created else IntakeOutcome.ALREADY_ENROLLED
    return Outcome(kind, (result.enrollment_id,), detail=detail)


def _cancel(parsed: Parsed, request: CancelVisit, ctx: Context) -> Outcome:
    if not request.visit:
        where = parsed.source_of("visit")
        raise FieldError(where, "the visit number is required", REQUIRED_FIELD_MISSING)
    ids = store.open_enrollments_of_visit(ctx.session, request.external_id, request.visit)
    if not ids:
        return Outcome(IntakeOutcome.IGNORED, note="no open enrollment for this visit")
    reason = f"the hospital cancelled the {request.what}"
    for enrollment_id in ids:
        lifecycle.cancel(ctx.session, enrollment_id, reason, ctx.actor, ctx.now)
    return Outcome(IntakeOutcome.CANCELLED, tuple(ids))


def _update(parsed: Parsed, request: UpdateContact, ctx: Context) -> Outcome:
    """Phone, email and language, through the edit staff use (``patients edit``)."""
    patient_id = store.patient_by_external_id(ctx.session, request.external_id)
    if patient_id is None:
        return Outcome(IntakeOutcome.IGNORED, note="no such patient")
    contact = request.contact
    checked: dict[str, str | None] = {}
    for name, raw, parse in (
        ("phone", contact.phone, parse_phone),
        ("email", contact.email, parse_email),
    ):
        try:
            checked[name] = parse(raw) if raw else None
        except ValueError as exc:
            raise FieldError(parsed.source_of(name), str(exc)) from None
    change = ContactChange(checked["phone"], checked["email"], contact.language)
    try:
        changed = patients.edit_contact(
            ctx.session, patient_id, change, ctx.catalog, ctx.actor, ctx.now
        )
    except InputError as exc:
        raise FieldError(parsed.source_of(exc.field), exc.problem) from None
    kind = IntakeOutcome.UPDATED if changed else IntakeOutcome.UNCHANGED
    return Outcome(kind, detail={"fields": changed})


def _merge(request: MergePatients, ctx: Context) -> Outcome:
    merged = store.merge_patients(
        ctx.session, request.external_id, request.prior, ctx.actor, ctx.now
    )
    if merged is None:
        return Outcome(IntakeOutcome.IGNORED, note="the prior patient is not enrolled")
    for enrollment_id in merged.duplicates:
        if store.is_open(ctx.session, enrollment_id):
            reason = "a duplicate of the surviving patient's enrollment (merged records)"
            lifecycle.cancel(ctx.session, enrollment_id, reason, ctx.actor, ctx.now)
    detail = {"duplicates_cancelled": len(merged.duplicates)}
    return Outcome(IntakeOutcome.MERGED, tuple(merged.enrollment_ids), detail=detail)
