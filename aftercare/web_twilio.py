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
        )
    log.info(
        "status callback sid=%s status=%s applied=%s",
        sid[:34],
        form.get("MessageStatus"),
        changed or "no",
    )
    return Response("", status=200)


@route("inbound")
def inbound(web: Web, request: Request) -> Response:
    form = web.twilio_form(request)
    if form is None:
        return forbidden()
    answer = inbox.receive(web.app, form)
    return twiml(answer)
