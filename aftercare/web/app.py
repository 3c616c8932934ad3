"""``aftercare serve``: Twilio webhooks, one-click unsubscribe, health, metrics and the staff
console: one Flask app.

Every Twilio request must carry a valid ``X-Twilio-Signature`` computed over
AFTERCARE_PUBLIC_URL + path (+ query) with the account's auth token; anything else gets 403 and
changes nothing. Bodies are small forms: larger ones get 413, other content types 415.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from aftercare.api import routes as api
from aftercare.app import App
from aftercare.web import ops, twilio, unsubscribe
from aftercare.web.http import MAX_BODY, plain

log = logging.getLogger("aftercare.web")


def create_app(app: App) -> Flask:
    """The WSGI application; one per process, shared by the server's threads."""
    # Imported here: the console's pages use the CLI's read functions, and the CLI imports
    # this module (``aftercare serve``), so a module-level import would go round in a circle.
    from aftercare.console import console_bp

    web = Flask("aftercare.web", static_folder=None)
    web.config.update(MAX_CONTENT_LENGTH=MAX_BODY, MAX_FORM_MEMORY_SIZE=MAX_BODY)
    web.url_map.strict_slashes = False
    # "/unsubscribe//0" is a bad token (404), not a path to redirect to "/unsubscribe/0".
    web.url_map.merge_slashes = False
    web.extensions["aftercare"] = app
    web.extensions["aftercare.signatures"] = twilio.Signatures(app.settings)
    blueprints = (twilio.blueprint, unsubscribe.blueprint, ops.blueprint, console_bp, api.blueprint)
    for blueprint in blueprints:
        web.register_blueprint(blueprint)
    web.register_error_handler(HTTPException, _http_error)
    web.register_error_handler(Exception, _unhandled)
    return web


def _http_error(exc: HTTPException) -> Response:
    if request.path.startswith(api.blueprint.url_prefix or "/api/"):
        return api.http_error(exc)  # routing's 404/405 never reach a blueprint's own handlers
    return plain(exc.code or 500, exc.name)


def _unhandled(exc: Exception) -> Response:
    # A bug must not take the server down or leak a traceback.
    log.exception("unhandled error on %s", request.path)
    return plain(500, "Internal Server Error")
