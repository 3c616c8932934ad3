"""The timelines (``/timelines``): each procedure's steps, their texts in every language as a
patient would read them, and the compliance lint's findings (``aftercare schedules check``)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template

from aftercare.console.context import aftercare_app
from aftercare.console.helpers import clinic_timezone, now
from aftercare.render import Recipient, render_message
from aftercare.schedules.lint import Finding, lint
from aftercare.schedules.model import Step, Timeline

SAMPLE_NAME = "Alex"  # texts are shown for a made-up patient


@dataclass(frozen=True)
class Text:
    language: str
    channel: str
    text: str
    subject: str | None


@dataclass(frozen=True)
class StepView:
    step: Step
    texts: list[Text]
    findings: list[Finding]


@dataclass(frozen=True)
class TimelineView:
    timeline: Timeline
    steps: list[StepView]
    other_findings: list[Finding]  # about the whole timeline (how often it texts)


def timelines() -> str:
    app = aftercare_app()
    views = [_view(t) for t in app.catalog]
    return render_template("console/timelines.html", timelines=views, sample=SAMPLE_NAME)


def _view(timeline: Timeline) -> TimelineView:
    app = aftercare_app()
    findings = lint(timeline, app.clinic, app.settings.quiet_hours)
    steps = []
    for step in timeline.steps:
        tag = f"step {step.id} ["
        texts = [
            _text(timeline, step, lang, channel)
            for lang in timeline.languages
            for channel in step.channels
        ]
        mine = [f for f in findings if f.message.startswith(tag)]
        steps.append(StepView(step, texts, mine))
    claimed = {id(f) for s in steps for f in s.findings}
    return TimelineView(timeline, steps, [f for f in findings if id(f) not in claimed])


def _text(timeline: Timeline, step: Step, language: str, channel: str) -> Text:
    recipient = Recipient(SAMPLE_NAME, clinic_timezone(), language, now())
    try:
        rendered = render_message(timeline, step, channel, recipient, aftercare_app().clinic, now())
    except Exception as exc:  # a template that fails at render time: the lint reports it too
        return Text(language, channel, f"(does not render: {exc})", None)
    return Text(language, channel, rendered.text, rendered.subject)
