"""What a timeline file becomes once loaded and validated: frozen, typed, hashable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from aftercare.schedules.timeexpr import OnDay, When
from aftercare.statuses import ChannelName

CHANNELS = (ChannelName.SMS, ChannelName.EMAIL)
DEFAULT_EXPIRES = timedelta(hours=12)
EXPECTS = ("pain-score",)  # what a step may ask the patient for
DEFAULT_ANSWER_WITHIN = timedelta(hours=24)
# What the database holds: procedure and step names in 64 characters, the version in a 32-bit
# integer. A file past these would load, then fail every enrollment with a database error.
MAX_NAME = 64
MAX_VERSION = 2**31 - 1


@dataclass(frozen=True)
class Repeat:
    every: timedelta
    until: When


@dataclass(frozen=True)
class Step:
    id: str
    at: When
    expires: timedelta
    channels: tuple[str, ...]
    sms: Mapping[str, str]
    email_subject: Mapping[str, str]
    email_body: Mapping[str, str]
    repeat: Repeat | None = None
    # The email of this step carries the timeline's calendar milestones as an .ics attachment.
    calendar: bool = False
    # The step asks for an answer ("pain-score": a 0-10 reply); none within answer_within opens
    # a "no answer" alert.
    expects: str | None = None
    answer_within: timedelta | None = None
    source: str = ""
    line: int = 0


@dataclass(frozen=True)
class Timeline:
    name: str
    titles: Mapping[str, str]
    version: int
    languages: tuple[str, ...]
    steps: tuple[Step, ...]
    milestones: Mapping[str, OnDay]
    source: str
    # Milestones that become calendar events, with the event's title in each language.
    calendar: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return self.titles[self.languages[0]]

    @cached_property
    def step_by_id(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.source))
