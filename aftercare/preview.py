"""What a patient would receive, message by message, before anything is stored.

``aftercare preview`` and the console's enroll preview both show this: each planned message with
its patient-local due time and the words it would carry, rendered as the dispatcher renders them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aftercare.config import QuietHours
from aftercare.planner import PlannedMessage, plan
from aftercare.render import Clinic, Recipient, render_message
from aftercare.schedules.model import Timeline


@dataclass(frozen=True)
class PreviewedMessage:
    planned: PlannedMessage
    text: str
    subject: str | None


def preview(
    timeline: Timeline,
    recipient: Recipient,
    channels: tuple[str, ...],
    clinic: Clinic,
    quiet: QuietHours | None,
) -> list[PreviewedMessage]:
    rows = []
    planned = plan(timeline, recipient.timezone, recipient.discharged_at, channels, quiet)
    for message in planned:
        step = timeline.step_by_id[message.step]
        rendered = render_message(
            timeline, step, message.channel, recipient, clinic, message.due_at
        )
        rows.append(PreviewedMessage(message, rendered.text, rendered.subject))
    return rows
