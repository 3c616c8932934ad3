"""What the blueprints share: the aftercare App behind this Flask app, and plain-text answers."""

from __future__ import annotations

from typing import cast

from flask import Response, current_app

from aftercare.app import App

# Twilio's callbacks are a few hundred bytes; an SMS reply at most 1600 characters.
MAX_BODY = 64 * 1024


def aftercare_app() -> App:
    """The App this request is served with (set by ``create_app``)."""
    return cast(App, current_app.extensions["aftercare"])


def plain(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")
