"""Twilio webhooks: delivery receipts and patients' replies, each checked for Twilio's signature."""

from __future__ import annotations

import logging
from typing import cast
from xml.sax.saxutils import escape

from flask import Blueprint, Response, current_app, request
from twilio.request_validator import RequestValidator
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from aftercare import inbox
from aftercare.config import Settings
from aftercare.db import transaction
from aftercare.store.receipts import apply_status
from aftercare.web.http import MAX_BODY, aftercare_app, plain

log = logging.getLogger("aftercare.web")

FORM = "application/x-www-form-urlencoded"

blueprint = Blueprint("twilio", __name__)


class Signatures:
    """Checks ``X-Twilio-Signature`` over AFTERCARE_PUBLIC_URL + path (+ query)."""

    def __init__(self, settings: Settings) -> None:
        token = settings.twilio_auth_token
        self.validator = RequestValidator(token) if token else None
        self.public_url = settings.public_url
        if self.validator is None or not self.public_url:
            log.warning(
                "Twilio webhooks will answer 403: TWILIO_AUTH_TOKEN and AFTERCARE_PUBLIC_URL "
                "are needed to check signatures"
            )

    def form(self) -> dict[str, str] | None:
        """This request's form if it is a well-formed, correctly signed Twilio request, else
        None (the caller answers 403). Raises 413/415 for oversized or non-form bodies."""
        if request.mimetype != FORM:
            raise UnsupportedMediaType("Expected application/x-www-form-urlencoded")
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise RequestEntityTooLarge()
        form = request.form  # werkzeug enforces MAX_FORM_MEMORY_SIZE while parsing
        signature = request.headers.get("X-Twilio-Signature", "")
        if self.validator is None or not self.public_url or not signature:
            return None
        query = request.query_string.decode("latin-1")
        url = self.public_url + request.path + (f"?{query}" if query else "")
        params = {key: form.get(key, "") for key in form}
        if not self.validator.validate(url, params, signature):
            return None
        return {key: _storable(value) for key, value in params.items()}


def _signed_form() -> dict[str, str] | None:
    return cast(Signatures, current_app.extensions["aftercare.signatures"]).form()


def _storable(value: str) -> str:
    """A form value as the database can keep it: PostgreSQL text cannot hold NUL (a NUL failed
    the whole request with 500, and Twilio retries those). U+FFFD marks where the NUL was; a SID
    so changed matches no message. Checked after the signature, which Twilio computed over the
    value as sent."""
    return value.replace("\x00", "\ufffd")


@blueprint.post("/webhooks/twilio/status", provide_automatic_options=False)
def status() -> Response:
    form = _signed_form()
    if form is None:
        return plain(403, "Forbidden")
    app = aftercare_app()
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    with transaction(app.sessions) as session:
        changed = apply_status(
            session,
            sid,
            form.get("MessageStatus", ""),
            form.get("ErrorCode") or None,
            app.clock.now(),
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


@blueprint.post("/webhooks/twilio/inbound", provide_automatic_options=False)
def inbound() -> Response:
    form = _signed_form()
    if form is None:
        return plain(403, "Forbidden")
    return twiml(inbox.receive(aftercare_app(), form))


def twiml(message: str | None) -> Response:
    """A TwiML answer: one <Message> to the patient, or an empty <Response/> for none."""
    body = f"<Message>{escape(message)}</Message>" if message else ""
    xml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
    return Response(xml, mimetype="text/xml")
