"""One-click email unsubscribe (RFC 8058): GET shows a confirmation page with a button, POST
unsubscribes. No cookies, no login: the signed token is the whole authorisation. An invalid token
answers 404 and says nothing about why."""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, request

from aftercare.db import transaction
from aftercare.statuses import ChannelName
from aftercare.store.suppressions import unsubscribe_email
from aftercare.tokens import read_token
from aftercare.web.http import aftercare_app, plain

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;
line-height:1.5}}button{{font-size:1rem;padding:.6rem 1.2rem}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


blueprint = Blueprint("unsubscribe", __name__)


@blueprint.route("/unsubscribe/<token>", methods=["GET", "POST"], provide_automatic_options=False)
def unsubscribe(token: str) -> Response:
    app = aftercare_app()
    secret = app.settings.secret_key
    found = read_token(secret, token) if secret else None
    if found is None:
        return plain(404, "Not Found")
    clinic = escape(app.settings.clinic_name)
    # Only POST changes anything: link scanners and mail clients fetch with GET and HEAD (Flask
    # answers HEAD with this view too), and neither may unsubscribe anyone.
    if request.method != "POST":
        body = (
            f"<p>Stop the aftercare reminder emails from {clinic}?</p>"
            '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
            '<button type="submit">Unsubscribe</button></form>'
        )
        return _html("Unsubscribe", body)
    now = app.clock.now()
    with transaction(app.sessions) as session:
        if found.channel == ChannelName.EMAIL:
            unsubscribe_email(session, found.patient_id, now)
    body = (
        f"<p>You will get no more reminder emails from {clinic}.</p>"
        "<p>Text messages are separate: reply STOP to a text to stop those too.</p>"
    )
    return _html("You are unsubscribed", body)


def _html(title: str, body: str) -> Response:
    response = Response(_PAGE.format(title=escape(title), body=body), mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    )
    return response
