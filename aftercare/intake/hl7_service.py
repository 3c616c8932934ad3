"""One HL7 v2 message in, its ACK out: parse, apply once, store the ACK, audit by control id.

Idempotent on MSH-10 (per sender): the first answer to a control id is stored with a digest of
the message, and a resend gets that same ACK and changes nothing. A control id reused for a
different message gets AE and changes nothing. A database error is answered AE and stored
nowhere, so the sender's resend is processed afresh. Logs carry the control id, event, outcome
and the field at fault, never a value from the message.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from aftercare import db
from aftercare.app import App
from aftercare.intake import ack
from aftercare.intake.apply import Context, Outcome, apply
from aftercare.intake.hl7v2 import (
    APPLICATION_INTERNAL_ERROR,
    FieldError,
    Header,
    Rejected,
    read_message,
    to_request,
)
from aftercare.intake.mapping import ProcedureMap
from aftercare.intake.requests import CancelVisit, Discharge, Parsed
from aftercare.statuses import EventKind, IntakeOutcome
from aftercare.store import intake as store

log = logging.getLogger(__name__)

_FIELD = re.compile(r"^[A-Z][A-Z0-9]{2}-\d+$")  # MSH-10

# Two writers racing on one new patient or one control id (PostgreSQL): the loser retries and
# then sees the winner's rows.
ATTEMPTS = 3


@dataclass(frozen=True)
class Answer:
    ack: str
    code: str
    outcome: IntakeOutcome


class Hl7Service:
    def __init__(self, app: App, procedures: ProcedureMap, timezone: str) -> None:
        self._app = app
        self._procedures = procedures
        self._zone_name = timezone
        self._zone = ZoneInfo(timezone)

    def __call__(self, raw: bytes) -> bytes:
        """The MLLP listener's handler: ACKs are sent in the message's own encoding."""
        text, encoding = _decode(raw)
        return self.handle(text).ack.encode(encoding, errors="replace")

    def handle(self, text: str) -> Answer:
        try:
            header, message = read_message(text)
        except Rejected as exc:
            return self._reject(exc)
        digest = hashlib.sha256(text.replace("\n", "\r").strip().encode()).hexdigest()
        # Read before the transaction: on SQLite it holds the one writer's lock.
        parsed: Parsed | FieldError
        try:
            parsed = to_request(header, message, self._procedures, self._zone)
        except FieldError as exc:
            parsed = exc
        for attempt in range(1, ATTEMPTS + 1):
            try:
                return self._once(header, parsed, digest)
            except IntegrityError:
                if attempt == ATTEMPTS:
                    return self._unavailable(header, "the change conflicts; resend")
            except OperationalError:
                return self._unavailable(header, "the database is unavailable; resend")
        raise AssertionError("unreachable")

    def _once(self, header: Header, parsed: Parsed | FieldError, digest: str) -> Answer:
        app = self._app
        with db.transaction(app.sessions) as session:
            now = app.clock.now()
            actor = f"hl7:{header.sender}"[:64]
            stored = store.find_hl7_message(session, header.sender, header.control_id)
            if stored is not None:
                if stored.digest != digest:
                    reuse = ack.Problem(
                        "MSH-10: this control id was used for a different message",
                        APPLICATION_INTERNAL_ERROR,
                        "MSH-10",
                    )
                    text = ack.build(ack.ERROR, header, _ack_id(), now, reuse)
                    store.audit(session, EventKind.HL7_CONFLICT, actor, now, _audit(header))
                    self._log(header, IntakeOutcome.CONFLICT)
                    return Answer(text, ack.ERROR, IntakeOutcome.CONFLICT)
                store.audit(session, EventKind.HL7_RESENT, actor, now, _audit(header))
                self._log(header, IntakeOutcome.RESENT)
                return Answer(stored.ack, stored.ack_code, IntakeOutcome.RESENT)
            outcome, code, problem, visit = self._apply(session, parsed, now, actor)
            text = ack.build(code, header, _ack_id(), now, problem)
            store.save_hl7_message(
                session,
                store.Hl7Record(
                    sender=header.sender,
                    control_id=header.control_id,
                    event=header.event,
                    digest=digest,
                    outcome=outcome.kind,
                    ack_code=code,
                    ack=text,
                    problem=problem.text if problem else outcome.note,
                    visit=visit,
                    enrollment_id=outcome.enrollment_ids[0] if outcome.enrollment_ids else None,
                    received_at=now,
                ),
            )
            detail = _audit(header) | {"outcome": outcome.kind.value} | outcome.detail
            if problem:
                detail["problem"] = problem.text
            elif outcome.note:
                detail["note"] = outcome.note
            store.audit(session, EventKind.HL7_RECEIVED, actor, now, detail, outcome.enrollment_ids)
        self._log(header, outcome.kind, problem.location if problem else None)
        return Answer(text, code, outcome.kind)

    def _apply(
        self, session: Session, parsed: Parsed | FieldError, now: datetime, actor: str
    ) -> tuple[Outcome, str, ack.Problem | None, str | None]:
        """What the message did, its ACK code, why it was not accepted, and its visit number."""
        if isinstance(parsed, FieldError):
            return Outcome(IntakeOutcome.ERROR), ack.ERROR, _problem(parsed), None
        request = parsed.request
        visit = request.visit if isinstance(request, Discharge | CancelVisit) else None
        app = self._app
        context = Context(session, app.catalog, app.settings, self._zone_name, now, actor)
        try:
            with session.begin_nested():  # an error leaves nothing of the message behind
                outcome = apply(parsed, context)
        except FieldError as exc:
            return Outcome(IntakeOutcome.ERROR), ack.ERROR, _problem(exc), visit
        return outcome, ack.ACCEPT, None, visit

    def _reject(self, exc: Rejected) -> Answer:
        app = self._app
        now = app.clock.now()
        where = exc.problem.split(":")[0]
        problem = ack.Problem(exc.problem, exc.code, where if _FIELD.match(where) else None)
        text = ack.build(ack.REJECT, exc.header, _ack_id(), now, problem)
        header = exc.header
        try:
            with db.transaction(app.sessions) as session:
                detail = {
                    "control_id": header.control_id if header else None,
                    "problem": exc.problem,
                }
                actor = f"hl7:{header.sender}"[:64] if header else "hl7:unknown"
                store.audit(session, EventKind.HL7_REJECTED, actor, now, detail)
        except OperationalError:
            pass  # the ACK says what is wrong either way; the log line below still records it
        log.warning(
            "hl7 message rejected",
            extra={
                "fields": {"control_id": header.control_id if header else None, "code": exc.code}
            },
        )
        return Answer(text, ack.REJECT, IntakeOutcome.REJECTED)

    def _unavailable(self, header: Header, reason: str) -> Answer:
        problem = ack.Problem(reason, APPLICATION_INTERNAL_ERROR)
        text = ack.build(ack.ERROR, header, _ack_id(), self._app.clock.now(), problem)
        self._log(header, IntakeOutcome.UNAVAILABLE)
        return Answer(text, ack.ERROR, IntakeOutcome.UNAVAILABLE)

    def _log(self, header: Header, outcome: IntakeOutcome, location: str | None = None) -> None:
        fields = {"control_id": header.control_id, "event": header.event, "outcome": outcome.value}
        if location:
            fields["field"] = location
        log.info("hl7 message %s", outcome.value, extra={"fields": fields})


def _problem(exc: FieldError) -> ack.Problem:
    return ack.Problem(str(exc), exc.code, exc.field)


def _audit(header: Header) -> dict[str, object]:
    return {"control_id": header.control_id, "event": header.event}


def _ack_id() -> str:
    return uuid.uuid4().hex[:20]  # MSH-10 is at most 20 characters in HL7 2.5


def _decode(raw: bytes) -> tuple[str, str]:
    """UTF-8 (MSH-18 UNICODE UTF-8, or ASCII), else ISO 8859-1 (8859/1, common in older feeds)."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("latin-1"), "latin-1"
