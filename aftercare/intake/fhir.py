"""FHIR R4 search results into neutral intake requests, and write-back resources.

A finished Encounter is a discharge: its end (``period.end``) is the discharge time, its Patient
(``_include=Encounter:patient``) gives the MRN (the identifier typed MR), first name, a mobile
phone, an email and the preferred ``communication.language``, and its Procedures
(``_revinclude=Procedure:encounter``, or the Encounter's ``diagnosis.condition`` references)
give the codes, CPT or SNOMED CT, mapped through the same file as HL7.

Resources are parsed and built with ``fhir.resources`` (R4B, which reads R4 servers' JSON for
these resources) so a malformed one is refused with the element at fault, not half-read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.procedure import Procedure

from aftercare.intake.hl7v2 import REQUIRED_FIELD_MISSING, FieldError
from aftercare.intake.mapping import ProcedureMap, coding_system
from aftercare.intake.requests import Contact, Discharge, Parsed

# Where each field of an enrollment comes from in FHIR terms, for error messages.
FIELDS = {
    "external_id": "Patient.identifier",
    "first_name": "Patient.name.given",
    "phone": "Patient.telecom",
    "email": "Patient.telecom",
    "language": "Patient.communication.language",
    "discharged_at": "Encounter.period.end",
    "procedure": "Procedure.code",
}
IDENTIFIER_SYSTEM = "urn:aftercare"  # our ids on written-back resources: conditional creates
PAIN_LOINC = "72514-3"  # Pain severity - 0-10 verbal numeric rating [Score] - Reported


@dataclass(frozen=True)
class FoundEncounter:
    encounter_id: str
    patient_id: str | None
    ended_at: datetime | None
    parsed: Parsed | None  # None: the encounter could not be read (see problem)
    problem: FieldError | None = None


def pages_to_encounters(
    pages: Iterable[Bundle], procedures: ProcedureMap
) -> Iterator[FoundEncounter]:
    """Every finished Encounter matched by the search, with what it asks for."""
    for page in pages:
        resources = [e.resource for e in page.entry or () if e.resource is not None]
        patients = {f"Patient/{r.id}": r for r in resources if isinstance(r, Patient)}
        procs = [r for r in resources if isinstance(r, Procedure)]
        by_id = {f"Procedure/{p.id}": p for p in procs}
        for entry in page.entry or ():
            encounter = entry.resource
            is_match = entry.search is None or entry.search.mode in (None, "match")
            if isinstance(encounter, Encounter) and is_match and encounter.status == "finished":
                yield _found(encounter, patients, procs, by_id, procedures)


def _found(
    encounter: Encounter,
    patients: Mapping[str, Patient],
    procs: list[Procedure],
    by_id: Mapping[str, Procedure],
    procedures: ProcedureMap,
) -> FoundEncounter:
    reference = encounter.subject.reference if encounter.subject else None
    patient_id = reference.split("/", 1)[1] if reference and "/" in reference else None
    ended = encounter.period.end if encounter.period else None
    ended_at = ended if isinstance(ended, datetime) else None
    try:
        patient = patients.get(reference or "")
        if patient is None:
            raise FieldError("Encounter.subject", "the Patient is not in the results", "101")
        own = [
            p for p in procs if p.encounter and p.encounter.reference == f"Encounter/{encounter.id}"
        ]
        for diagnosis in encounter.diagnosis or ():
            linked = by_id.get(diagnosis.condition.reference or "") if diagnosis.condition else None
            if linked is not None and linked not in own:
                own.append(linked)
        parsed = Parsed(_discharge(encounter, patient, own, ended_at, procedures), FIELDS)
    except FieldError as exc:
        return FoundEncounter(str(encounter.id), patient_id, ended_at, None, exc)
    return FoundEncounter(str(encounter.id), patient_id, ended_at, parsed)


def _discharge(
    encounter: Encounter,
    patient: Patient,
    procs: list[Procedure],
    ended_at: datetime | None,
    procedures: ProcedureMap,
) -> Discharge:
    if ended_at is None or ended_at.tzinfo is None:
        raise FieldError(
            "Encounter.period.end", "a discharge time with an offset is required", "101"
        )
    codes = [
        (coding_system(c.system), c.code)
        for p in procs
        if p.status != "entered-in-error" and p.code
        for c in p.code.coding or ()
        if c.code
    ]
    if not codes:
        raise FieldError("Procedure.code", "a procedure code is required", REQUIRED_FIELD_MISSING)
    timeline = next((t for s, c in codes if (t := procedures.timeline_for(s, c))), None)
    shown = next(((s, c) for s, c in codes if procedures.timeline_for(s, c)), codes[0])
    visit = encounter.identifier[0].value if encounter.identifier else None
    return Discharge(
        external_id=_mrn(patient),
        visit=visit or str(encounter.id),
        contact=_contact(patient),
        discharged_at=ended_at.astimezone(UTC),
        procedure=timeline,
        procedure_code=f"{shown[0]} {shown[1]}",
    )


def _mrn(patient: Patient) -> str:
    identifiers = [i for i in patient.identifier or () if i.value and i.value.strip()]
    for identifier in identifiers:
        codings = identifier.type.coding if identifier.type and identifier.type.coding else []
        if any(c.code == "MR" for c in codings):
            return str(identifier.value).strip()
    if identifiers:
        return str(identifiers[0].value).strip()
    raise FieldError("Patient.identifier", "the patient's MRN is required", REQUIRED_FIELD_MISSING)


def _contact(patient: Patient) -> Contact:
    names = sorted(patient.name or (), key=lambda n: 0 if n.use in ("usual", "official") else 1)
    given = next((g for n in names for g in n.given or () if g and g.strip()), None)
    # A contact point whose period has ended is no longer in use.
    telecom = [
        t for t in patient.telecom or () if t.value and (t.period is None or t.period.end is None)
    ]
    phones = sorted(
        (t for t in telecom if t.system in ("phone", "sms")),
        key=lambda t: (0 if t.system == "sms" or t.use == "mobile" else 1, t.rank or 99),
    )
    email = next((t.value for t in telecom if t.system == "email"), None)
    languages = sorted(patient.communication or (), key=lambda c: 0 if c.preferred else 1)
    language = None
    for communication in languages:
        for coding in communication.language.coding or ():
            if coding.code:
                language = coding.code.split("-")[0].lower()
                break
        if language:
            break
    return Contact(
        first_name=given,
        phone=phones[0].value if phones else None,
        email=email,
        language=language,
    )


# --- write-back -------------------------------------------------------------------------------


def communication(
    kind: str, local_id: int, patient_id: str, encounter_id: str | None, at: datetime, text: str
) -> Communication:
    """A message we sent (``kind`` "message") or a reply we received ("reply")."""
    data: dict[str, Any] = {
        "resourceType": "Communication",
        "identifier": [{"system": f"{IDENTIFIER_SYSTEM}:{kind}", "value": str(local_id)}],
        "status": "completed",
        "subject": {"reference": f"Patient/{patient_id}"},
        "payload": [{"contentString": text}],
        "category": [{"text": "aftercare reminder" if kind == "message" else "patient reply"}],
    }
    if kind == "message":
        data["sent"] = at.isoformat()
        data["recipient"] = [{"reference": f"Patient/{patient_id}"}]
    else:
        data["received"] = at.isoformat()
        data["sender"] = {"reference": f"Patient/{patient_id}"}
    if encounter_id:
        data["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    return Communication.model_validate(data)


def pain_observation(
    reply_id: int, patient_id: str, encounter_id: str | None, at: datetime, score: int
) -> Observation:
    data: dict[str, Any] = {
        "resourceType": "Observation",
        "identifier": [{"system": f"{IDENTIFIER_SYSTEM}:pain", "value": str(reply_id)}],
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {
            "coding": [
                {
                    "system": "http://loinc.org",
                    "code": PAIN_LOINC,
                    "display": "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
                }
            ]
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": at.isoformat(),
        "valueInteger": score,
    }
    if encounter_id:
        data["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    return Observation.model_validate(data)


def if_none_exist(resource: Communication | Observation) -> str:
    """The conditional-create query that finds this resource again: our identifier."""
    identifier = (resource.identifier or [])[0]
    return f"identifier={identifier.system}|{identifier.value}"
