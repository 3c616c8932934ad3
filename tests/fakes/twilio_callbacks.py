"""Twilio's webhooks, as the fake Twilio would post them: status callbacks and inbound SMS.

Twilio signs the URL it was given (``X-Twilio-Signature``: HMAC-SHA1 with the auth token over the
URL and the sorted form fields). That URL is public (built from ``AFTERCARE_PUBLIC_URL``); in a
test the request goes to the server on loopback instead, so :class:`TwilioWebhooks` signs the
public URL and sends to the same path and query on ``local_url``.

The forms carry the fields Twilio sends (``MessageSid`` and its older alias ``SmsSid``,
``MessageStatus``/``SmsStatus``, ``ErrorCode`` when a message failed, ...); see
https://www.twilio.com/docs/messaging/guides/track-outbound-message-status and
https://www.twilio.com/docs/messaging/guides/webhook-request.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeMessage

FORM = "application/x-www-form-urlencoded"


def status_form(
    message: FakeMessage,
    status: str,
    error_code: str | None = None,
    account_sid: str = ACCOUNT_SID,
) -> dict[str, str]:
    """The form of one status callback about ``message``."""
    form = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "From": message.from_ or FROM_NUMBER,
        "MessageSid": message.sid,
        "MessageStatus": status,
        "SmsSid": message.sid,
        "SmsStatus": status,
        "To": message.to,
    }
    if message.messaging_service_sid:
        form["MessagingServiceSid"] = message.messaging_service_sid
    if error_code:
        form["ErrorCode"] = error_code
    return form


def inbound_form(
    from_: str,
    body: str,
    to: str = FROM_NUMBER,
    sid: str | None = None,
    account_sid: str = ACCOUNT_SID,
) -> dict[str, str]:
    """The form of one SMS a patient sent to our number."""
    sid = sid or f"SM{uuid.uuid4().hex}"
    return {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": from_,
        "MessageSid": sid,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsMessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "To": to,
    }


def local(public_url: str, local_url: str) -> str:
    """``public_url``'s path and query on ``local_url`` (``http://127.0.0.1:PORT``)."""
    parts = urlsplit(public_url)
    return local_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


class TwilioWebhooks:
    """Posts signed webhooks to the server at ``local_url``, one keep-alive connection."""

    def __init__(self, local_url: str, auth_token: str = AUTH_TOKEN) -> None:
        self.local_url = local_url
        self.validator = RequestValidator(auth_token)
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()

    def post(self, public_url: str, form: dict[str, str]) -> requests.Response:
        """POST ``form`` signed over ``public_url`` (what Twilio was told) to the local server."""
        signature = self.validator.compute_signature(public_url, form)
        return self.http.post(
            local(public_url, self.local_url),
            data=urlencode(form),
            headers={"X-Twilio-Signature": signature, "Content-Type": FORM},
            timeout=10,
        )

    def status(
        self, message: FakeMessage, status: str, error_code: str | None = None
    ) -> requests.Response:
        """Twilio reports ``status`` for ``message`` to the StatusCallback it was created with."""
        if not message.status_callback:
            raise ValueError(f"message {message.sid} was created without a StatusCallback")
        return self.post(message.status_callback, status_form(message, status, error_code))

    def inbound(
        self, inbound_url: str, from_: str, body: str, sid: str | None = None
    ) -> requests.Response:
        """``from_`` texts ``body`` to our number; ``inbound_url`` is the number's webhook."""
        return self.post(inbound_url, inbound_form(from_, body, sid=sid))
