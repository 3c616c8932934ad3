"""Rendering a planned message into the words a patient receives, in the patient's language."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aftercare import gsm, smsfit
from aftercare.planner import zone
from aftercare.schedules.model import Step, Timeline
from aftercare.statuses import ChannelName
from aftercare.templates import LocalDate, render


@dataclass(frozen=True)
class Recipient:
    """What templates may know of a patient: deliberately no phone, email or external id."""

    first_name: str
    timezone: str
    language: str
    discharged_at: datetime


@dataclass(frozen=True)
class Clinic:
    name: str
    phone: str


@dataclass(frozen=True)
class Rendered:
    channel: str
    text: str
    subject: str | None = None
    # An SMS too long for one part even with the name left out (see aftercare.smsfit): never sent.
    fits: bool = True


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
    shorten: bool = True,
) -> Rendered:
    """Raises jinja2 errors if a template fails (the caller records them on the message).

    An SMS is shortened to fit one part by :func:`aftercare.smsfit.fit` (the lint, which
    measures the template with a long sample name, asks for ``shorten=False``)."""
    values = context(timeline, recipient, clinic, due_at)
    language = recipient.language
    if channel == ChannelName.SMS:
        template = step.sms[language]

        def sms(name: str) -> str:
            # Folded to GSM-7 so one accent never turns a 1-part text into a 3-part UCS-2 text.
            return gsm.fold(render(template, values | {"first_name": name}))

        if not shorten:
            return Rendered(ChannelName.SMS, sms(recipient.first_name))
        fitted = smsfit.fit(sms, recipient.first_name)
        return Rendered(ChannelName.SMS, fitted.text, fits=fitted.fits)
    subject = render(step.email_subject[language], values)
    return Rendered(ChannelName.EMAIL, render(step.email_body[language], values), subject=subject)
