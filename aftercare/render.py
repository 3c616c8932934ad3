"""Rendering a planned message into the words a patient receives, in the patient's language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aftercare import gsm
from aftercare.planner import zone
from aftercare.schedules.model import Step, Timeline
from aftercare.statuses import Audience, ChannelName
from aftercare.templates import LocalDate, render


@dataclass(frozen=True)
class Recipient:
    """What templates may know of a patient: deliberately no phone, email or external id."""

    first_name: str
    timezone: str
    language: str
    discharged_at: datetime
    audience: Audience = Audience.PATIENT


@dataclass(frozen=True)
class Clinic:
    name: str
    phone: str


@dataclass(frozen=True)
class Rendered:
    channel: str
    text: str
    subject: str | None = None


def context(
    timeline: Timeline, recipient: Recipient, clinic: Clinic, due_at: datetime
) -> dict[str, object]:
    tz = zone(recipient.timezone)
    language = recipient.language
    discharge_day = recipient.discharged_at.astimezone(tz).date()
    values: dict[str, object] = {
        "first_name": recipient.first_name,
        "clinic_name": clinic.name,
        "clinic_phone": clinic.phone,
        "procedure_title": timeline.titles[language],
        "discharge_date": LocalDate(discharge_day, language),
        "step_date": LocalDate(due_at.astimezone(tz).date(), language),
        "audience": recipient.audience,
    }
    for name, when in timeline.milestones.items():
        values[name] = LocalDate(discharge_day + timedelta(days=when.day), language)
    return values


def render_message(
    timeline: Timeline,
    step: Step,
    channel: str,
    recipient: Recipient,
    clinic: Clinic,
    due_at: datetime,
) -> Rendered:
    """Raises jinja2 errors if a template fails (the caller records them on the message)."""
    values = context(timeline, recipient, clinic, due_at)
    language = recipient.language
    if channel == ChannelName.SMS:
        # Folded to GSM-7 so one accent never turns a 1-part text into a 3-part UCS-2 text.
        return Rendered(ChannelName.SMS, gsm.fold(render(step.sms[language], values)))
    subject = render(step.email_subject[language], values)
    return Rendered(ChannelName.EMAIL, render(step.email_body[language], values), subject=subject)
