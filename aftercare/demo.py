"""``aftercare demo``: sample patients on a throwaway database, their timelines as they read."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path

import click

from aftercare import views
from aftercare.app import App
from aftercare.cli import cli, pass_app
from aftercare.db import transaction
from aftercare.enrollment import enroll_many, parse_request
from aftercare.models import Enrollment
from aftercare.planner import local_to_utc, zone
from aftercare.render import Recipient, render_message


@dataclass(frozen=True)
class SamplePatient:
    first_name: str
    phone: str
    email: str
    timezone: str
    procedure: str
    language: str
    discharge_time: time  # patient-local, today


# Test numbers from the 555-01xx range reserved for fiction; example.org mailboxes.
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


@cli.command("demo")
@click.option(
    "--keep",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Keep the demo database at this path instead of a temporary one.",
)
@pass_app
def demo(app: App, keep: Path | None) -> None:
    """Enroll sample patients on a throwaway SQLite database and show their timelines."""
    with tempfile.TemporaryDirectory(prefix="aftercare-demo-") as folder:
        path = keep or Path(folder) / "demo.db"
        demo_app = App(
            app.settings.with_overrides(database_url=f"sqlite:///{path}"), app.clock, "staff:demo"
        )
        try:
            _run(demo_app)
        finally:
            demo_app.close()


def _run(app: App) -> None:
    now = app.clock.now()
    requests = [parse_request(_fields(p, now), app.catalog, now) for p in SAMPLES]
    with transaction(app.sessions) as session:
        results = enroll_many(session, requests, app.settings, now, app.actor)
    click.echo(f"Enrolled {len(results)} sample patients on a throwaway database.\n")
    with app.sessions() as session:
        for result in results:
            _show(app, session.get_one(Enrollment, result.enrollment_id))


def _fields(sample: SamplePatient, now: datetime) -> dict[str, str | None]:
    today = now.astimezone(zone(sample.timezone)).date()
    discharged = local_to_utc(today, sample.discharge_time, zone(sample.timezone)) - timedelta(
        days=0
    )
    return {
        "first_name": sample.first_name,
        "phone": sample.phone,
        "email": sample.email,
        "timezone": sample.timezone,
        "procedure": sample.procedure,
        "language": sample.language,
        "discharged_at": discharged.isoformat(),
    }


def _show(app: App, enrollment: Enrollment) -> None:
    patient = enrollment.patient
    timeline = app.catalog.get(enrollment.procedure)
    recipient = Recipient(
        patient.first_name, patient.timezone, patient.language, enrollment.discharged_at
    )
    local_discharge = views.local(enrollment.discharged_at, patient.timezone)
    click.secho(
        f"== {patient.first_name}: {timeline.name}, {patient.timezone}, {patient.language}, "
        f"discharged {local_discharge}",
        bold=True,
    )
    for message in enrollment.messages:
        step = timeline.step_by_id[message.step]
        rendered = render_message(
            timeline, step, message.channel, recipient, app.clinic, message.due_at
        )
        moved = "  (moved out of quiet hours)" if message.due_at != message.planned_at else ""
        click.echo(f"{views.local(message.due_at, patient.timezone)}  {message.channel:<5}{moved}")
        click.echo(
            "    " + (rendered.text if message.channel == "sms" else f"Subject: {rendered.subject}")
        )
    click.echo()
