"""``aftercare serve``: Twilio webhooks, one-click unsubscribe, health and metrics (WSGI).

Every Twilio request must carry a valid ``X-Twilio-Signature`` computed over
AFTERCARE_PUBLIC_URL + path (+ query) with the account's auth token; anything else gets 403 and
changes nothing. Bodies are small forms: larger ones get 413, other content types 415.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from twilio.request_validator import RequestValidator
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from aftercare.app import App

log = logging.getLogger("aftercare.web")

# Twilio's callbacks are a few hundred bytes; an SMS reply at most 1600 characters.
MAX_BODY = 64 * 1024
FORM = "application/x-www-form-urlencoded"

Handler = Callable[..., Response]  # (web, request, **url values) -> response
_routes: dict[str, Handler] = {}


def route(endpoint: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _routes[endpoint] = handler
        return handler

    return register


URLS = Map(
    [
        Rule("/webhooks/twilio/status", methods=["POST"], endpoint="status"),
        Rule("/webhooks/twilio/inbound", methods=["POST"], endpoint="inbound"),
        Rule("/unsubscribe/<token>", methods=["GET", "POST"], endpoint="unsubscribe"),
        Rule("/healthz", methods=["GET"], endpoint="healthz"),
        Rule("/metrics", methods=["GET"], endpoint="metrics"),
    ],
    strict_slashes=False,
)


class Web:
    """The WSGI application; one per process, shared by the server's threads."""

    def __init__(self, app: App) -> None:
        self.app = app
        token = app.settings.twilio_auth_token
        self.validator = RequestValidator(token) if token else None
        if self.validator is None or not app.settings.public_url:
            log.warning(
                "Twilio webhooks will answer 403: TWILIO_AUTH_TOKEN and AFTERCARE_PUBLIC_URL "
                "are needed to check signatures"
            )

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_BODY
        request.max_form_memory_size = MAX_BODY
        response = self.dispatch(request)
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        try:
            endpoint, values = URLS.bind_to_environ(request.environ).match()
            return _routes[endpoint](self, request, **values)
        except HTTPException as exc:
            return _plain(exc.code or 500, exc.name)
        except Exception:  # a bug must not take the server down or leak a traceback
            log.exception("unhandled error on %s", request.path)
            return _plain(500, "Internal Server Error")

    # --- Twilio requests ------------------------------------------------------------------

    def twilio_form(self, request: Request) -> dict[str, str] | None:
        """The request's form if it is a well-formed, correctly signed Twilio request, else None
        (the caller answers 403). Raises 413/415 for oversized or non-form bodies."""
        if request.mimetype != FORM:
            raise _UnsupportedMediaType()
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise RequestEntityTooLarge()
        form = request.form  # werkzeug enforces max_form_memory_size while parsing
        public_url = self.app.settings.public_url
        signature = request.headers.get("X-Twilio-Signature", "")
        if self.validator is None or not public_url or not signature:
            return None
        query = request.query_string.decode("latin-1")
        url = public_url + request.path + (f"?{query}" if query else "")
        params = {key: form.get(key, "") for key in form}
        if not self.validator.validate(url, params, signature):
            return None
        return {key: _storable(value) for key, value in params.items()}


def _storable(value: str) -> str:
    """A form value as the database can keep it: PostgreSQL text cannot hold NUL, and a NUL in a
    patient's reply (or a SID) failed the whole request with 500, so Twilio retried it for
    hours. U+FFFD marks where the NUL was; a SID so changed matches no message. Checked after
    the signature, which Twilio computed over the value as sent."""
    return value.replace("\x00", "\ufffd")


class _UnsupportedMediaType(HTTPException):
    code = 415
    description = "Expected application/x-www-form-urlencoded"


def _plain(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, mimetype="text/plain")


def forbidden() -> Response:
    return _plain(403, "Forbidden")


def not_found() -> Response:
    raise NotFound()


def twiml(message: str | None) -> Response:
    """A TwiML answer: one <Message> to the patient, or an empty <Response/> for none."""
    from xml.sax.saxutils import escape

    body = f"<Message>{escape(message)}</Message>" if message else ""
    xml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
    return Response(xml, mimetype="text/xml")


def create_app(app: App) -> Web:
    # The handlers register themselves on import.
    from aftercare import web_ops, web_twilio, web_unsubscribe  # noqa: F401

    return Web(app)
