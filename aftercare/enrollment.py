"""Enrollment requests: what staff typed (a form, a CSV row) checked field by field.

:func:`aftercare.store.enrollments.enroll_many` stores them, planned, in batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from aftercare.errors import InputError
from aftercare.identity import identity_key
from aftercare.schedules.load import Catalog
from aftercare.schedules.model import Timeline
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
)
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
    discharged_at: datetime
    language: str
    channels: tuple[str, ...]
    external_id: str | None
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
        if not values.get(name):
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
    discharged = _field("discharged_at", parse_instant, values)
    _field("discharged_at", lambda _: check_discharge_time(discharged, now), values)
    return EnrollmentRequest(
        first_name=_field("first_name", parse_first_name, values),
        phone=_field("phone", parse_phone, values),
        email=email,
        timezone=_field("timezone", _parse_timezone, values),
        timeline=timeline,
        discharged_at=discharged,
        language=language,
        channels=channels,
        external_id=_field("external_id", parse_external_id, values)
        if values.get("external_id")
        else None,
        language_given=bool(values.get("language")),
    )


def _field(name: str, parse: Callable[[str], Any], values: Mapping[str, str]) -> Any:
    try:
        return parse(values.get(name, ""))
    except (ValueError, KeyError) as exc:
        raise InputError(name, str(exc.args[0]) if exc.args else "is not valid") from None
