"""``/api/v1``: enrollments for integration engines and scripts, on ``aftercare serve``.

JSON in and out, in the shapes of the CLI's ``--json`` (``patients show``, ``patients list``).
Each request carries ``Authorization: Bearer ak_…`` (``aftercare apikey create``); viewers read,
nurses and admins also write. Every request made with a key, refused or not, is in the audit
log under the key's name. A POST with an ``Idempotency-Key`` is done once: a repeat gets the
first answer again (``Idempotent-Replayed: true``), the same key with another request a 422.
Errors are RFC 9457 problem details naming the member at fault.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from aftercare.api import keys
from aftercare.api.openapi import SPEC
from aftercare.api.problems import Problem, response
from aftercare.cli import views
from aftercare.db import transaction
from aftercare.enrollment import parse_request
from aftercare.errors import AftercareError, InputError, NotFoundError
from aftercare.store import apikeys, lifecycle, reports
from aftercare.store import intake as intake_store
from aftercare.store.enrollments import Refused, enroll_many
from aftercare.validation import check_discharge_time, parse_external_id, parse_instant
from aftercare.web.http import aftercare_app

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

Result = tuple[int, Any, int | None]  # status, JSON body, the enrollment it concerns
Action = Callable[[Session, datetime, str], Result]
# Ids are database integers: a larger one names nothing (and would overflow the driver).
ID = "<int(max=2147483647):enrollment_id>"
ENROLL_FIELDS = (
    "first_name",
    "phone",
    "email",
    "timezone",
    "procedure",
    "discharged_at",
    "language",
    "channels",
    "external_id",
)


@blueprint.get("/openapi.json")
def openapi() -> Response:
    return Response(json.dumps(SPEC), 200, mimetype="application/json")


@blueprint.post("/enrollments")
def create_enrollment() -> Response:
    def action(session: Session, now: datetime, actor: str) -> Result:
        app = aftercare_app()
        body = _body()
        fields = {name: _text(body, name) for name in ENROLL_FIELDS}
        enrollment = parse_request(fields, app.catalog, now)
        (result,) = enroll_many(session, [enrollment], app.settings, now, actor)
        if isinstance(result, Refused):  # it would change what is on file: say what to do
            error = result.error
            raise Problem(
                409, "conflict", error.problem, error.field, enrollment_id=result.enrollment_id
            )
        shown = views.show_enrollment(session, result.enrollment_id) | {"created": result.created}
        return (201 if result.created else 200), shown, result.enrollment_id

    return _run(action, write=True)


@blueprint.get(f"/enrollments/{ID}")
def get_enrollment(enrollment_id: int) -> Response:
    def action(session: Session, now: datetime, actor: str) -> Result:
        return 200, views.show_enrollment(session, enrollment_id), enrollment_id

    return _run(action, write=False)


@blueprint.post(f"/enrollments/{ID}/<any(cancel, pause, resume):verb>")
def change_enrollment(enrollment_id: int, verb: str) -> Response:
    def action(session: Session, now: datetime, actor: str) -> Result:
        reason = _reason(_body(optional=True))
        if verb == "cancel":
            if not reason:
                raise InputError("reason", "is required")
            lifecycle.cancel(session, enrollment_id, reason, actor, now)
        elif verb == "pause":
            lifecycle.pause(session, enrollment_id, reason, actor, now)
        else:
            lifecycle.resume(session, enrollment_id, reason, actor, now)
        return 200, views.show_enrollment(session, enrollment_id), enrollment_id

    return _run(action, write=True)


@blueprint.post(f"/enrollments/{ID}/reschedule")
def reschedule(enrollment_id: int) -> Response:
    def action(session: Session, now: datetime, actor: str) -> Result:
        app = aftercare_app()
        body = _body()
        raw = _text(body, "discharged_at")
        if not raw:
            raise InputError("discharged_at", "is required")
        try:
            when = check_discharge_time(parse_instant(raw), now)
        except ValueError as exc:
            raise InputError("discharged_at", str(exc)) from None
        lifecycle.reschedule(
            session, enrollment_id, when, app.catalog, app.settings, actor, now, _reason(body)
        )
        return 200, views.show_enrollment(session, enrollment_id), enrollment_id

    return _run(action, write=True)


@blueprint.get("/patients")
def patients() -> Response:
    raw = (request.args.get("external_id") or "").strip()

    def action(session: Session, now: datetime, actor: str) -> Result:
        if not raw:
            raise InputError("external_id", "is required")
        try:
            external_id = parse_external_id(raw)
        except ValueError as exc:
            raise InputError("external_id", str(exc)) from None
        enrollments = intake_store.enrollments_of_external_id(session, external_id)
        counts = reports.message_counts(session, [e.id for e in enrollments])
        listed = [views.enrollment_summary(e, counts.get(e.id, {})) for e in enrollments]
        return 200, listed, None

    return _run(action, write=False, query=frozenset({"external_id"}))


def http_error(exc: HTTPException) -> Response:
    """The web app's HTTP errors (no such route, wrong method, too large) under /api/v1."""
    status = exc.code or 500
    problem = Problem(status, "http", exc.description or exc.name)
    allowed = getattr(exc, "valid_methods", None)
    return response(problem, {"Allow": ", ".join(allowed)} if allowed else None)


# --- what every endpoint shares ---------------------------------------------------------------


def _run(action: Action, write: bool, query: frozenset[str] = frozenset()) -> Response:
    try:
        return _authorised(action, write, query)
    except Problem as problem:
        headers = {"WWW-Authenticate": "Bearer"} if problem.status == 401 else None
        return response(problem, headers)
    except OperationalError:
        return response(Problem(503, "unavailable", "the database is unavailable; retry"))


def _authorised(action: Action, write: bool, query: frozenset[str]) -> Response:
    app = aftercare_app()
    presented = request.headers.get("Authorization", "")
    token = presented.removeprefix("Bearer ").strip() if presented.startswith("Bearer ") else ""
    key_id = keys.key_id_of(token)
    with transaction(app.sessions) as session:
        key = apikeys.by_key_id(session, key_id) if key_id else None
    if key is None or key.revoked or not keys.matches(token, key.digest):
        raise Problem(401, "unauthenticated", "a valid API key is required (Bearer ak_…)")
    now = app.clock.now()
    idempotency = request.headers.get("Idempotency-Key", "").strip() if write else ""
    if len(idempotency) > 200:
        raise Problem(422, "invalid-field", "is longer than 200 characters", "Idempotency-Key")
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.path.encode() + b"\n" + request.get_data()
    ).hexdigest()
    try:
        with transaction(app.sessions) as session:
            if idempotency:
                kept = apikeys.kept_answer(session, key.id, idempotency)
                if kept is not None:
                    return _replay(kept, digest)
            unknown = sorted(set(request.args) - query)
            if unknown:
                # A misspelt parameter (externalid=) must not silently list everything.
                status, body, enrollment_id = _problem(
                    Problem(422, "invalid-field", "is not a parameter here", unknown[0][:40])
                )
            elif write and key.role not in keys.WRITERS:
                status, body, enrollment_id = _problem(
                    Problem(403, "forbidden", f"the key's role ({key.role}) may only read")
                )
            else:
                status, body, enrollment_id = _attempt(session, action, now, f"api:{key.name}")
            text = json.dumps(body)
            if idempotency and status < 500:
                apikeys.keep_answer(session, key.id, idempotency, digest, status, text, now)
            detail = {"method": request.method, "path": request.path, "status": status}
            apikeys.record_use(session, key, now, detail, enrollment_id)
    except IntegrityError:
        # Two requests at once with the same Idempotency-Key, or enrolling the same new patient:
        # the other one won; a retry gets its answer.
        raise Problem(409, "conflict", "a concurrent request made the same change; retry") from None
    media = "application/problem+json" if status >= 400 else "application/json"
    return Response(text, status, mimetype=media)


def _attempt(session: Session, action: Action, now: datetime, actor: str) -> Result:
    """The action's result, or its error as a problem; an error leaves nothing written."""
    try:
        with session.begin_nested():
            return action(session, now, actor)
    except Problem as problem:
        return _problem(problem)
    except InputError as exc:
        return _problem(Problem(422, "invalid-field", exc.problem, exc.field))
    except NotFoundError as exc:
        return _problem(Problem(404, "not-found", str(exc)))
    except AftercareError as exc:
        return _problem(Problem(409, "conflict", str(exc)))


def _problem(problem: Problem) -> Result:
    return problem.status, problem.body(), None


def _replay(kept: apikeys.Kept, digest: str) -> Response:
    if kept.request_digest != digest:
        raise Problem(
            422,
            "idempotency-key-reused",
            "was used for a different request",
            "Idempotency-Key",
        )
    media = "application/problem+json" if kept.status >= 400 else "application/json"
    return Response(kept.body, kept.status, {"Idempotent-Replayed": "true"}, mimetype=media)


def _body(optional: bool = False) -> dict[str, Any]:
    raw = request.get_data()
    if optional and not raw.strip():
        return {}
    if request.mimetype != "application/json":
        raise Problem(415, "unsupported-media-type", "send application/json")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "invalid-json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Problem(422, "invalid-field", "must be a JSON object", "body")
    return body


def _text(body: dict[str, Any], name: str) -> str | None:
    """A member as text (``channels`` may also be a list of names)."""
    value = body.get(name)
    if value is None:
        return None
    if name == "channels" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(value)
    if not isinstance(value, str):
        raise InputError(name, "must be a string")
    return value


def _reason(body: dict[str, Any]) -> str | None:
    text = _text(body, "reason")
    cleaned = " ".join(text.split()) if text else ""
    if len(cleaned) > 500:
        raise InputError("reason", "is longer than 500 characters")
    return cleaned or None
