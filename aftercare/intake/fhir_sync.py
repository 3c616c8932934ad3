"""``aftercare fhir sync``: finished Encounters since the stored cursor become enrollments, and
(optionally) what aftercare did goes back to the record.

Each Encounter is handled once (by its id, per server), through the same ``apply`` as HL7, in its
own transaction, so a bad one is reported and the rest go on. The search reaches back a day
before the cursor: an Encounter finished earlier but written to the server late is still found,
and the ones seen already are skipped by id.

Write-back, when on: a Communication for each message sent and each reply received, and an
Observation (LOINC 72514-3) for each pain score, for patients who came from this server; each is
a conditional create on our identifier, so a retry after a lost answer never makes a second one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.observation import Observation

from aftercare import db
from aftercare.app import App
from aftercare.intake import fhir
from aftercare.intake.apply import Context, Outcome, apply
from aftercare.intake.fhir_client import FhirClient
from aftercare.intake.hl7v2 import FieldError
from aftercare.intake.mapping import ProcedureMap
from aftercare.statuses import EventKind, IntakeOutcome
from aftercare.store import intake as store

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=1)
FIRST_SYNC = timedelta(days=7)  # how far back a server never synced before is read
PAGE_SIZE = 50


@dataclass
class SyncReport:
    seen: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # "Encounter/enc-1: Patient.telecom: …"
    cursor: datetime | None = None
    written_back: int = 0


def sync(
    app: App,
    client: FhirClient,
    procedures: ProcedureMap,
    timezone: str,
    writeback: bool = False,
) -> SyncReport:
    report = SyncReport()
    now = app.clock.now()
    with db.transaction(app.sessions) as session:
        cursor = store.fhir_cursor(session, client.base)
    since = (cursor - LOOKBACK) if cursor else now - FIRST_SYNC
    params = {
        "status": "finished",
        "date": f"ge{since.strftime('%Y-%m-%dT%H:%M:%SZ')}",
        "_include": "Encounter:patient",
        "_revinclude": "Procedure:encounter",
        "_count": str(PAGE_SIZE),
    }
    latest = cursor
    actor = f"fhir:{client.base}"[:64]
    for found in fhir.pages_to_encounters(client.search("Encounter", params), procedures):
        report.seen += 1
        ended = found.ended_at.astimezone(UTC) if found.ended_at and found.ended_at.tzinfo else None
        if ended and (latest is None or ended > latest):
            latest = ended
        kind = _one(app, client.base, found, timezone, actor, report)
        report.outcomes[kind.value] = report.outcomes.get(kind.value, 0) + 1
    if latest is not None and latest != cursor:
        with db.transaction(app.sessions) as session:
            store.set_fhir_cursor(session, client.base, latest)
    report.cursor = latest
    if writeback:
        report.written_back = push(app, client)
    log.info(
        "fhir sync done",
        extra={"fields": {"seen": report.seen, "errors": len(report.errors)} | report.outcomes},
    )
    return report


def _one(
    app: App,
    base: str,
    found: fhir.FoundEncounter,
    timezone: str,
    actor: str,
    report: SyncReport,
) -> IntakeOutcome:
    with db.transaction(app.sessions) as session:
        if store.fhir_encounter_seen(session, base, found.encounter_id):
            return IntakeOutcome.RESENT
        now = app.clock.now()
        problem = found.problem
        outcome = Outcome(IntakeOutcome.ERROR)
        if found.parsed is not None:
            context = Context(session, app.catalog, app.settings, timezone, now, actor)
            try:
                with session.begin_nested():
                    outcome = apply(found.parsed, context)
            except FieldError as exc:
                problem = exc
        enrollment_id = outcome.enrollment_ids[0] if outcome.enrollment_ids else None
        store.save_fhir_encounter(
            session,
            base,
            found.encounter_id,
            found.patient_id,
            outcome.kind,
            enrollment_id,
            str(problem) if problem else outcome.note,
            now,
        )
        detail = {"encounter": found.encounter_id, "outcome": outcome.kind.value} | outcome.detail
        if problem:
            detail["problem"] = str(problem)
            report.errors.append(f"Encounter/{found.encounter_id}: {problem}")
        store.audit(session, EventKind.FHIR_RECEIVED, actor, now, detail, outcome.enrollment_ids)
    return outcome.kind


def push(app: App, client: FhirClient, limit: int = 500) -> int:
    """Write back what is not written yet; returns how many resources were written."""
    with db.transaction(app.sessions) as session:
        pending = store.writeback_pending(session, client.base, limit)
    written = 0
    for item in pending:
        if item.kind == "pain":
            resource: Communication | Observation = fhir.pain_observation(
                item.local_id, item.patient_ref, item.encounter_ref, item.at, int(item.text)
            )
        else:
            resource = fhir.communication(
                item.kind, item.local_id, item.patient_ref, item.encounter_ref, item.at, item.text
            )
        server_id = client.create_if_none_exist(resource, fhir.if_none_exist(resource))
        with db.transaction(app.sessions) as session:
            store.mark_written_back(
                session, client.base, item.kind, item.local_id, server_id, app.clock.now()
            )
        written += 1
    return written
