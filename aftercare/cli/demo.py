"""``aftercare demo``: whole timelines of sample patients, replayed on a simulated clock.

Everything real but the clock and the channel: a throwaway SQLite database, the same enrollment,
claims, dispatch and recording as production, and the console channel instead of Twilio/SMTP.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

import click

from aftercare.app import App
from aftercare.channels.registry import console_channels
from aftercare.cli.group import pass_app
from aftercare.clock import ManualClock
from aftercare.daemon import next_due
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher, DispatchOptions
from aftercare.enrollment import parse_request
from aftercare.planner import local_to_utc, zone
from aftercare.statuses import MessageStatus
from aftercare.store import lifecycle, reports
from aftercare.store.enrollments import enroll_many


@dataclass(frozen=True)
class SamplePatient:
    first_name: str
    phone: str
    email: str
    timezone: str
    procedure: str
    language: str
    discharge_time: time  # patient-local, on the demo's first day


# Fictional 555-01xx numbers and example.org mailboxes.
SAMPLES = (
    SamplePatient(
        "James",
        "+12025550143",
        "james@example.org",
        "America/New_York",
        "kyphoplasty",
        "en",
        time(14, 0),
    ),
    SamplePatient(
        "María",
        "+13105550178",
        "maria@example.org",
        "America/Los_Angeles",
        "vertebroplasty",
        "es",
        time(20, 45),
    ),  # late evening: quiet hours show
    SamplePatient(
        "Priya",
        "+16175550134",
        "priya@example.org",
        "Europe/London",
        "kyphoplasty",
        "en",
        time(11, 30),
    ),
)
# Staff pause Priya's reminders while she is readmitted (days 1 to 4 after discharge); the
# reminders that fell due meanwhile expire instead of arriving days late.
PAUSE = (2, timedelta(days=1), timedelta(days=4))


@click.command("demo")
@click.option(
    "--keep",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Keep the demo database at this path instead of a temporary one.",
)
@pass_app
def demo(app: App, keep: Path | None) -> None:
    """Replay sample patients' six-week timelines on a simulated clock (console channel)."""
    with tempfile.TemporaryDirectory(prefix="aftercare-demo-") as folder:
        path = keep or Path(folder) / "demo.db"
        clock = ManualClock(app.clock.now())
        settings = app.settings.with_overrides(database_url=f"sqlite:///{path}")
        demo_app = App(settings, clock, "staff:demo")
        try:
            replay(demo_app, clock)
        finally:
            demo_app.close()


def replay(app: App, clock: ManualClock) -> Counter[str]:
    ids = _enroll_samples(app, clock)
    names = _names_by_message(app)
    channels = console_channels(clock.now, label=lambda m: names.get(m.message_id, "?"))
    # One sender keeps the printed order the order of due times.
    dispatcher = Dispatcher(
        app.sessions, channels, app.catalog, app.settings, clock, "demo", DispatchOptions(senders=1)
    )
    pause_id = ids[PAUSE[0]]
    pause_at: datetime | None = clock.now() + PAUSE[1]
    resume_at: datetime | None = clock.now() + PAUSE[2]
    tally: Counter[str] = Counter()
    try:
        while (due := next_due(dispatcher)) is not None or pause_at or resume_at:
            step_to = min(t for t in (due, pause_at, resume_at) if t is not None)
            clock.set(max(step_to, clock.now()))
            if pause_at and clock.now() >= pause_at:
                _staff(app, clock, "pause", pause_id)
                pause_at = None
            if resume_at and clock.now() >= resume_at:
                _staff(app, clock, "resume", pause_id)
                resume_at = None
            tally.update(done := dispatcher.dispatch_due())
            if done["expired"]:
                click.secho(
                    f"    {done['expired']} message(s) expired unsent: their time had passed",
                    fg="yellow",
                )
    finally:
        dispatcher.close()
    _summary(app, tally)
    return tally


def _enroll_samples(app: App, clock: ManualClock) -> list[int]:
    now = clock.now()
    requests = [parse_request(_fields(p, now), app.catalog, now) for p in SAMPLES]
    clock.set(min(r.discharged_at for r in requests))
    with transaction(app.sessions) as session:
        results = enroll_many(session, requests, app.settings, clock.now(), app.actor)
    click.secho(
        f"Enrolled {len(results)} sample patients on a throwaway SQLite database; "
        "replaying six weeks on a simulated clock (times are patient-local).\n",
        bold=True,
    )
    return [r.enrollment_id for r in results]


def _fields(sample: SamplePatient, now: datetime) -> dict[str, str | None]:
    tz = zone(sample.timezone)
    discharged = local_to_utc(now.astimezone(tz).date(), sample.discharge_time, tz)
    return {
        "first_name": sample.first_name,
        "phone": sample.phone,
        "email": sample.email,
        "timezone": sample.timezone,
        "procedure": sample.procedure,
        "language": sample.language,
        "discharged_at": discharged.isoformat(),
    }


def _names_by_message(app: App) -> dict[int, str]:
    with app.sessions() as session:
        return reports.first_names_by_message(session)


def _staff(app: App, clock: ManualClock, action: str, enrollment_id: int) -> None:
    """Pause or resume one enrollment as staff would, and say so in the replay."""
    reason = "readmitted" if action == "pause" else "back home"
    with transaction(app.sessions) as session:
        patient = lifecycle.get_enrollment(session, enrollment_id).patient
        change = lifecycle.pause if action == "pause" else lifecycle.resume
        count = change(session, enrollment_id, reason, app.actor, clock.now())
    local = clock.now().astimezone(zone(patient.timezone))
    click.secho(
        f"{local:%a %Y-%m-%d %H:%M %Z}  staff {action} {patient.first_name}'s reminders "
        f"({reason}): {count} message(s)",
        fg="yellow",
    )


def _summary(app: App, tally: Counter[str]) -> None:
    with app.sessions() as session:
        statuses = reports.status_totals(session)
        deferred = reports.sent_out_of_quiet_hours(session)
    click.secho("\nSummary", bold=True)
    sent, expired = statuses.get(MessageStatus.SENT, 0), statuses.get(MessageStatus.EXPIRED, 0)
    click.echo(f"  sent: {sent} (of which {deferred} deferred out of quiet hours)")
    click.echo(f"  expired: {expired} (fell due while paused; never sent late)")
    for status in sorted(set(statuses) - {"sent", "expired"}):
        click.echo(f"  {status}: {statuses[status]}")
