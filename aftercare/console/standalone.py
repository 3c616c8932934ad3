"""A Flask app of the console alone, until ``aftercare.web.create_app`` registers it."""

from __future__ import annotations

from flask import Flask

from aftercare.app import App
from aftercare.console import console_bp
from aftercare.console.context import EXTENSION


def create_console_app(app: App) -> Flask:
    flask_app = Flask("aftercare.console")
    flask_app.extensions[EXTENSION] = app
    flask_app.register_blueprint(console_bp)
    return flask_app
