"""What the pages need from the rest of the console: the App, the signed-in actor, the clock.

One place, so the pages do not each know how the web app keeps these.
"""

from __future__ import annotations

from datetime import datetime

from flask import current_app, g

from aftercare.app import App


def aftercare() -> App:
    app: App = current_app.extensions["aftercare"]
    return app


def now() -> datetime:
    return aftercare().clock.now()


def actor() -> str:
    """The signed-in account as the event log names it."""
    actor_name: str = g.actor
    return actor_name


def clinic_timezone() -> str:
    return aftercare().settings.clinic_timezone
