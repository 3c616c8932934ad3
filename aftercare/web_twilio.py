"""Twilio webhooks: delivery receipts and patients' replies."""

from __future__ import annotations

import logging

from werkzeug.wrappers import Request, Response

from aftercare import inbox
from aftercare.db import transaction
from aftercare.receipts import apply_status
from aftercare.web import Web, forbidden, route, twiml

log = logging.getLogger("aftercare.web")


@route("status")
def status(web: Web, request: Request) -> Response:
    form = web.twilio_form(request)
    if form is None:
        return forbidden()
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    with transaction(web.app.sessions) as session:
        changed = apply_status(
            session,
            sid,
            form.get("MessageStatus", ""),
            form.get("ErrorCode") or None,
            web.app.clock.now(),
            _message_id(request.args.get("message")),
        )
    log.info(
        "status callback sid=%s status=%s applied=%s",
        sid[:34],
        form.get("MessageStatus"),
        changed or "no",
    )
    return Response("", status=200)


def _message_id(raw: str | None) -> int | None:
    """Our message id from the callback URL; anything else names no message."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) < 19 else None


@route("inbound")
def inbound(web: Web, request: Request) -> Response:
    form = web.twilio_form(request)
    if form is None:
        return forbidden()
    answer = inbox.receive(web.app, form)
    return twiml(answer)
