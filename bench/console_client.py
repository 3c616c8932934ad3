"""PROTOTYPE until H13a's sign-in lands: the console app with a client."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from flask_wtf import CSRFProtect

from aftercare.app import App
from aftercare.console import console_bp


def signed_in_client(app: App) -> FlaskClient:
    web = Flask("bench")
    web.secret_key = "bench" * 8
    web.config["WTF_CSRF_ENABLED"] = False
    CSRFProtect(web)
    web.extensions["aftercare"] = app
    web.register_blueprint(console_bp)
    return web.test_client()
