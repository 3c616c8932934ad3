"""Compliance lint for timelines (TCPA health-care exemption, 47 CFR 64.1200(a)(9)(iv)).

The exemption holds only for texts that are concise (160 characters), name the provider and its
contact number, say how to opt out, and come at most once a day and three times a week. We also
keep diagnoses out of SMS (minimum necessary): a lock screen is not private.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from aftercare import gsm, smsfit
from aftercare.config import QuietHours
from aftercare.planner import plan, zone
from aftercare.render import Clinic, Recipient, render_message
from aftercare.schedules.model import Step, Timeline
from aftercare.templates import undeclared_variables

SMS_MAX_CHARS = 160
SMS_PER_DAY = 1
SMS_PER_WEEK = 3
# Lint renders with a long first name so a real one rarely pushes a text over the limit.
SAMPLE_FIRST_NAME = "Maximiliano"
DIAGNOSIS_WORDS = (
    "fracture",
    "fractura",
    "osteoporosis",
    "osteoporotic",
    "osteoporótica",
    "tumor",
    "tumour",
    "cancer",
    "cáncer",
    "compression",
    "compresión",
    "vertebral",
    "kyphoplasty",
    "cifoplastia",
    "vertebroplasty",
    "vertebroplastia",
    "metastasis",
    "metástasis",
)
# SMS are folded to GSM-7 before they are checked ("compresión" is sent as "compresion"), so the
# folded forms are looked for too; a prefix match also catches plurals ("fractures", "tumores").
_DIAGNOSIS = re.compile(
    r"\b(?:"
    + "|".join(sorted({*DIAGNOSIS_WORDS, *map(gsm.fold, DIAGNOSIS_WORDS)}, key=len, reverse=True))
    + r")\w*",
    re.IGNORECASE,
)
_OPT_OUT = re.compile(r"\bSTOP\b")
# Discharge days that cross a DST change in each zone, plus ordinary days; every hour of each.
_SAMPLE_ZONES = ("America/New_York", "Europe/Madrid", "Australia/Sydney", "Asia/Kolkata")
_SAMPLE_DAYS = (
    datetime(2026, 3, 7, tzinfo=UTC),
    datetime(2026, 10, 24, tzinfo=UTC),
    datetime(2026, 4, 3, tzinfo=UTC),
    datetime(2026, 6, 15, tzinfo=UTC),
)


@dataclass(frozen=True)
class Finding:
    level: str  # "error" or "warning"
    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.level}: {self.message}"


def lint(timeline: Timeline, clinic: Clinic, quiet: QuietHours | None) -> list[Finding]:
    findings: list[Finding] = []
    for step in timeline.steps:
        for language in timeline.languages:
            findings += _lint_texts(timeline, step, language, clinic)
    findings += _lint_frequency(timeline, quiet)
    return findings


def _lint_texts(timeline: Timeline, step: Step, language: str, clinic: Clinic) -> list[Finding]:
    recipient = Recipient(SAMPLE_FIRST_NAME, "America/New_York", language, _SAMPLE_DAYS[3])
    found: list[Finding] = []

    def add(level: str, message: str) -> None:
        found.append(
            Finding(
                level,
                step.source or timeline.source,
                step.line,
                f"step {step.id} [{language}] {message}",
            )
        )

    for channel in step.channels:
        try:
            rendered = render_message(
                timeline, step, channel, recipient, clinic, _SAMPLE_DAYS[3], shorten=False
            )
        except Exception as exc:  # a template that fails at render time
            add("error", f"{channel}: does not render: {exc}")
            continue
        if channel == "sms":
            _lint_sms(rendered.text, clinic, add)
    return found


def _lint_sms(text: str, clinic: Clinic, add: Callable[[str, str], None]) -> None:
    length = gsm.gsm_length(text)
    wide = gsm.non_gsm_characters(text)
    if length > SMS_MAX_CHARS:
        add("error", f"sms: {length} GSM-7 characters, more than {SMS_MAX_CHARS}")
    elif wide and not smsfit.fits(text):
        used, limit = smsfit.length(text)
        add("error", f"sms: {used} characters in UCS-2, more than {limit}: it would not be sent")
    if wide:
        add("warning", f"sms: {''.join(wide)!r} force UCS-2 encoding (70 characters a part)")
    # ``text`` is folded to GSM-7, and so is the clinic's name inside it ("Clínica" -> "Clinica").
    if gsm.fold(clinic.name) not in text:
        add("error", "sms: does not name the clinic ({{ clinic_name }})")
    if gsm.fold(clinic.phone) not in text:
        add("error", "sms: does not give the clinic's phone ({{ clinic_phone }})")
    if not _OPT_OUT.search(text):
        add("error", "sms: does not say how to opt out (reply STOP)")
    for word in dict.fromkeys(m.group(0).lower() for m in _DIAGNOSIS.finditer(text)):
        add("warning", f"sms: mentions {word!r}; keep diagnoses out of texts")


def _lint_frequency(timeline: Timeline, quiet: QuietHours | None) -> list[Finding]:
    """Plan SMS for many discharge times and zones; report the first breach of each rule."""
    per_day: Finding | None = None
    per_week: Finding | None = None
    for tz_name in _SAMPLE_ZONES:
        tz = zone(tz_name)
        for day in _SAMPLE_DAYS:
            for hour in range(24):
                discharged = day + timedelta(hours=hour)
                sends = [m.due_at for m in plan(timeline, tz_name, discharged, ("sms",), quiet)]
                local_days = [at.astimezone(tz).date() for at in sends]
                days = Counter(local_days)
                if per_day is None and days and max(days.values()) > SMS_PER_DAY:
                    per_day = _frequency_finding(
                        timeline, "a day", SMS_PER_DAY, tz_name, discharged
                    )
                if per_week is None and _most_in_seven_days(local_days) > SMS_PER_WEEK:
                    per_week = _frequency_finding(
                        timeline, "in 7 days", SMS_PER_WEEK, tz_name, discharged
                    )
    return [f for f in (per_day, per_week) if f is not None]


def _most_in_seven_days(days: list[date]) -> int:
    """The most texts on any 7 consecutive local days. Calendar days, like the daily rule, not
    168 hours: a weekly text at 10:00 is 6 days 23 hours after the last one across a DST change,
    and that is still once a week to the patient."""
    days = sorted(days)
    most, start = 0, 0
    for end, day in enumerate(days):
        while (day - days[start]).days >= 7:
            start += 1
        most = max(most, end - start + 1)
    return most


def _frequency_finding(
    timeline: Timeline, span: str, limit: int, tz: str, discharged: datetime
) -> Finding:
    local = discharged.astimezone(zone(tz))
    return Finding(
        "error",
        timeline.source,
        1,
        f"more than {limit} SMS {span} for a patient discharged {local:%Y-%m-%d %H:%M} in {tz}",
    )


def name_notes(timeline: Timeline, clinic: Clinic) -> list[Finding]:
    """For each text that names the patient, the rule that keeps it to one SMS: how long a first
    name fits, beyond which the first word of it is sent, or no name (see aftercare.smsfit)."""
    notes: list[Finding] = []
    for step in timeline.steps:
        for language in timeline.languages if "sms" in step.channels else ():
            if "first_name" not in undeclared_variables(step.sms[language]):
                continue
            budget = _name_budget(timeline, step, language, clinic)
            if budget < 0:
                continue  # too long even without a name: an error of the lint already
            notes.append(
                Finding(
                    "note",
                    step.source or timeline.source,
                    step.line,
                    f"step {step.id} [{language}] sms: a first name longer than {budget} "
                    "characters is sent as its first word, or left out",
                )
            )
    return notes


def _name_budget(timeline: Timeline, step: Step, language: str, clinic: Clinic) -> int:
    def sms(name: str) -> str:
        recipient = Recipient(name, "America/New_York", language, _SAMPLE_DAYS[3])
        return render_message(
            timeline, step, "sms", recipient, clinic, _SAMPLE_DAYS[3], shorten=False
        ).text

    try:
        return smsfit.name_budget(sms)
    except Exception:  # a template that fails at render time: reported by lint()
        return -1
