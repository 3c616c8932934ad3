"""What a timeline file becomes once loaded and validated: frozen, typed, hashable."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from aftercare.schedules.timeexpr import OnDay, When
from aftercare.statuses import Audience, ChannelName

CHANNELS = (ChannelName.SMS, ChannelName.EMAIL)
# Who a step goes to: the patient, and (when staff enrolled one) the caregiver or driver.
AUDIENCES = tuple(Audience)
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
    audience: tuple[Audience, ...] = (Audience.PATIENT,)
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
    # The texts of the file and of the bases it extends, by file name: what enrollments keep, so
    # a file broken later does not stop the messages already planned from it.
    files: Mapping[str, str] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        """Names these exact texts (sha256 of the files, in name order)."""
        hashed = hashlib.sha256()
        for name in sorted(self.files):
            hashed.update(f"{name}\0{self.files[name]}\0".encode())
        return hashed.hexdigest()

    @property
    def title(self) -> str:
        return self.titles[self.languages[0]]

    @cached_property
    def step_by_id(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.source))
