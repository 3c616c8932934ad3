"""Enrollment requests: what staff typed (a form, a CSV row) checked field by field.

:func:`aftercare.store.enrollments.enroll_many` stores them, planned, in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from aftercare.errors import InputError
from aftercare.identity import identity_key
from aftercare.schedules.load import Catalog
from aftercare.schedules.model import Timeline
from aftercare.statuses import Audience
from aftercare.validation import (
    check_discharge_time,
    parse_channels,
    parse_email,
    parse_external_id,
    parse_first_name,
    parse_instant,
    parse_phone,
    parse_timezone,
)

FIELDS = (
    "first_name",
    "phone",
    "email",
    "timezone",
    "procedure",
    "discharged_at",
    "language",
    "channels",
    "external_id",
    "procedure_at",
    "follow_up_at",
    "caregiver_name",
    "caregiver_phone",
    "caregiver_email",
    "caregiver_language",
)
CAREGIVER_FIELDS = ("caregiver_name", "caregiver_phone", "caregiver_email", "caregiver_language")
# A CSV's header must have these columns; a row needs discharged_at or procedure_at (booked, not
# yet discharged: the discharge is recorded later with `aftercare discharge`).
REQUIRED = ("first_name", "phone", "timezone", "procedure", "discharged_at")

# ZoneInfo keeps only the 8 zones used last; an import spanning more re-reads zone files for most
# rows. Zone names are few, so the checked ones are remembered (failures are not cached).
_parse_timezone = lru_cache(maxsize=1024)(parse_timezone)


@dataclass(frozen=True)
class EnrollmentRequest:
    first_name: str
    phone: str
    email: str | None
    timezone: str
    timeline: Timeline
    # The discharge, or the procedure's time while ``awaiting_discharge`` (the column is NOT NULL
    # for daemons of the previous release; nothing after discharge is planned from it).
    discharged_at: datetime
    language: str
    channels: tuple[str, ...]
    external_id: str | None
    procedure_at: datetime | None = None
    follow_up_at: datetime | None = None
    awaiting_discharge: bool = False
    # "caregiver" for the enrollment of a caregiver or driver; ``caregiver_for`` is then the
    # patient's enrollment (known once that is stored). A patient's request carries the
    # caregiver's, which staff may add with the caregiver's own consent to be texted.
    audience: Audience = Audience.PATIENT
    caregiver_for: int | None = None
    caregiver: EnrollmentRequest | None = None
    # False when staff left the language out and the timeline's default was taken: a patient
    # on file then keeps their own.
    language_given: bool = True

    @property
    def identity(self) -> str:
        """Who the patient is (:func:`aftercare.identity.identity_key`): the MRN if given."""
        return identity_key(self.external_id, self.phone, self.first_name)


def parse_request(
    raw: Mapping[str, str | None], catalog: Catalog, now: datetime
) -> EnrollmentRequest:
    """Check every field; raises InputError naming the first bad one. Writes nothing."""
    values = {k: (v or "").strip() for k, v in raw.items()}
    for name in REQUIRED:
        if not values.get(name) and name != "discharged_at":
            raise InputError(name, "is required")
    timeline = _field("procedure", lambda v: catalog.get(v), values)
    language = (values.get("language") or timeline.languages[0]).lower()
    if language not in timeline.languages:
        raise InputError(
            "language",
            f"{language!r} is not offered for {timeline.name} "
            f"(choose from {', '.join(timeline.languages)})",
        )
    email = _field("email", parse_email, values) if values.get("email") else None
    default_channels = "sms,email" if email else "sms"
    channels = _field(
        "channels", parse_channels, {"channels": values.get("channels") or default_channels}
    )
    if "email" in channels and not email:
        raise InputError("channels", "email is chosen but no email address was given")
    procedure = _time_field("procedure_at", values, now)
    discharged = _time_field("discharged_at", values, now)
    follow_up = _time_field("follow_up_at", values, now)
    stored = discharged or procedure
    if stored is None:
        raise InputError("discharged_at", "is required (or procedure_at, when only booked)")
    if procedure and discharged and discharged < procedure:
        raise InputError("discharged_at", "is before procedure_at")
    if follow_up and follow_up <= stored:
        raise InputError("follow_up_at", "is not after the procedure and discharge")
    patient = EnrollmentRequest(
        first_name=_field("first_name", parse_first_name, values),
        phone=_field("phone", parse_phone, values),
        email=email,
        timezone=_field("timezone", _parse_timezone, values),
        timeline=timeline,
        discharged_at=stored,
        language=language,
        channels=channels,
        external_id=_field("external_id", parse_external_id, values)
        if values.get("external_id")
        else None,
        procedure_at=procedure,
        follow_up_at=follow_up,
        awaiting_discharge=discharged is None,
        language_given=bool(values.get("language")),
    )
    if any(values.get(name) for name in CAREGIVER_FIELDS):
        return replace(patient, caregiver=_caregiver(patient, values))
    return patient


def _caregiver(patient: EnrollmentRequest, values: Mapping[str, str]) -> EnrollmentRequest:
    """The caregiver's own request: same timeline and times, their number, name and language."""
    for name in ("caregiver_name", "caregiver_phone"):
        if not values.get(name):
            raise InputError(name, "is required for a caregiver")
    phone = _field("caregiver_phone", parse_phone, values)
    if phone == patient.phone:
        raise InputError("caregiver_phone", "is the patient's own number")
    email = (
        _field("caregiver_email", parse_email, values) if values.get("caregiver_email") else None
    )
    timeline = patient.timeline
    language = (values.get("caregiver_language") or patient.language).lower()
    if language not in timeline.languages:
        raise InputError(
            "caregiver_language",
            f"{language!r} is not offered for {timeline.name} "
            f"(choose from {', '.join(timeline.languages)})",
        )
    return replace(
        patient,
        first_name=_field("caregiver_name", parse_first_name, values),
        phone=phone,
        email=email,
        language=language,
        channels=("sms", "email") if email else ("sms",),
        external_id=None,
        audience=Audience.CAREGIVER,
        language_given=bool(values.get("caregiver_language")),
    )


def _time_field(name: str, values: Mapping[str, str], now: datetime) -> datetime | None:
    if not values.get(name):
        return None
    when: datetime = _field(name, parse_instant, values)
    _field(name, lambda _: check_discharge_time(when, now), values)
    return when


def _field(name: str, parse: Callable[[str], Any], values: Mapping[str, str]) -> Any:
    try:
        return parse(values.get(name, ""))
    except (ValueError, KeyError) as exc:
        raise InputError(name, str(exc.args[0]) if exc.args else "is not valid") from None
