"""``aftercare demo --serve``: a database the console can be opened on, and the console itself.

The sample patients are enrolled as if discharged over the last few days; what fell due since
goes out through the console channel; then they reply through the inbound webhook's own code (a
warning sign, a question, a rising pain score, a STOP), so the worklist, the roster and the
patient pages have something on them. A nurse and a viewer account are made with a fresh
password, printed once, and ``aftercare serve``'s web app is served on 127.0.0.1.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from pathlib import Path

import click

from aftercare import inbox
from aftercare.accounts import service
from aftercare.app import App
from aftercare.channels.registry import console_channels
from aftercare.clock import SystemClock
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher, DispatchOptions
from aftercare.enrollment import parse_request
from aftercare.store.enrollments import enroll_many

# (first name, phone, zone, procedure, language, days since discharge); 555-01xx numbers.
PATIENTS = (
    ("James", "+12025550143", "America/New_York", "kyphoplasty", "en", 3),
    ("María", "+13105550178", "America/Los_Angeles", "vertebroplasty", "es", 2),
    ("Priya", "+16175550134", "Europe/London", "kyphoplasty", "en", 4),
    ("Tom", "+13125550122", "America/Chicago", "vertebroplasty", "en", 1),
    ("Lucía", "+17135550190", "America/Chicago", "kyphoplasty", "es", 5),
)
# Who texts what, in this order (the second score is a rise of 4: urgent).
REPLIES = (
    ("+16175550134", "4"),
    ("+13125550122", "Can I take a shower tomorrow?"),
    ("+17135550190", "STOP"),
    ("+16175550134", "8"),
    ("+12025550143", "I have a fever and the site is red"),
)
NURSE, VIEWER = "nurse@demo.example", "viewer@demo.example"


def build(app: App) -> str:
    """Fill ``app``'s database; returns the demo accounts' password."""
    now = app.clock.now()
    requests = [
        parse_request(
            {
                "first_name": name,
                "phone": phone,
                "email": f"patient{number}@example.org",
                "timezone": tz,
                "procedure": procedure,
                "language": language,
                "discharged_at": (now - timedelta(days=days)).isoformat(),
            },
            app.catalog,
            now,
        )
        for number, (name, phone, tz, procedure, language, days) in enumerate(PATIENTS, 1)
    ]
    with transaction(app.sessions) as session:
        enroll_many(session, requests, app.settings, now, "staff:demo")
    channels = console_channels(app.clock.now)
    dispatcher = Dispatcher(
        app.sessions, channels, app.catalog, app.settings, app.clock, "demo",
        DispatchOptions(senders=1),
    )  # fmt: skip
    try:
        dispatcher.dispatch_due()
    finally:
        dispatcher.close()
    for number, body in REPLIES:
        inbox.receive(
            app, {"MessageSid": f"SMdemo{uuid.uuid4().hex}", "From": number, "Body": body}
        )
    password = secrets.token_urlsafe(12)
    for email, name, role in ((NURSE, "Demo Nurse", "nurse"), (VIEWER, "Demo Viewer", "viewer")):
        service.add_staff(app.sessions, email, name, role, password, "staff:demo", now)
    return password


def serve(app: App, path: Path, port: int) -> None:
    import waitress

    from aftercare.web import create_app

    demo_app = App(
        app.settings.with_overrides(
            database_url=f"sqlite:///{path}",
            secret_key=app.settings.secret_key or secrets.token_hex(16),
        ),
        SystemClock(),
        "staff:demo",
    )
    try:
        password = build(demo_app)
        url = f"http://127.0.0.1:{port}"
        click.secho(f"\nThe console is at {url} (demo database: {path})", bold=True)
        click.echo(f"  sign in as {NURSE} (or {VIEWER}) with the password {password}")
        click.echo("  Ctrl-C stops it.")
        waitress.serve(create_app(demo_app), host="127.0.0.1", port=port, ident="aftercare")
    finally:
        demo_app.close()
