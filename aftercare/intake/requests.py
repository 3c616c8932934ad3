"""What a hospital system asks of aftercare, whatever it spoke (HL7 v2, FHIR): neutral and typed.

Each parser turns its messages into these; ``aftercare.intake.apply`` carries them out through the
same enrollment and lifecycle code staff use. Values are as the sender wrote them (a phone in any
format); the enrollment code normalises and validates them, and ``fields`` says which part of the
sender's message each of our fields came from, so an error can name it (``PID-13``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Contact:
    first_name: str | None = None
    phone: str | None = None
    email: str | None = None
    language: str | None = None  # ISO 639-1 ("es"), lower case


@dataclass(frozen=True)
class Discharge:
    """A patient went home after a procedure: enroll them (A03, a finished Encounter)."""

    external_id: str
    visit: str | None
    contact: Contact
    discharged_at: datetime
    # The timeline the procedure code maps to; None: a procedure the clinic does not follow.
    procedure: str | None
    procedure_code: str  # "CPT 22513", for the audit log


@dataclass(frozen=True)
class ScheduledAdmission:
    """A procedure is scheduled (A05 pre-admit, A01 admit)."""

    external_id: str
    visit: str | None
    procedure: str | None
    procedure_code: str


@dataclass(frozen=True)
class CancelVisit:
    """A discharge (A13) or an admission (A11) was entered in error."""

    external_id: str
    visit: str | None
    what: str  # "discharge" or "admission"


@dataclass(frozen=True)
class UpdateContact:
    """The patient's details changed (A08)."""

    external_id: str
    contact: Contact


@dataclass(frozen=True)
class MergePatients:
    """Two records are one patient (A40): ``prior`` is folded into ``external_id``."""

    external_id: str
    prior: str


Request = Discharge | ScheduledAdmission | CancelVisit | UpdateContact | MergePatients


@dataclass(frozen=True)
class Parsed:
    """A request with where each of its fields came from in the sender's message."""

    request: Request
    fields: Mapping[str, str] = field(default_factory=dict)  # our field -> "PID-13"

    def source_of(self, our_field: str) -> str:
        return self.fields.get(our_field, our_field)
