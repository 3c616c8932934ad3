"""What the console needs of the Flask app it is registered on: its cookie and secret."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime
from typing import Any

from flask import current_app, g
from flask.blueprints import BlueprintSetupState
from flask_wtf.csrf import generate_csrf

from aftercare.accounts.roles import may
from aftercare.app import App
from aftercare.console.context import EXTENSION
from aftercare.statuses import StaffRole

log = logging.getLogger("aftercare.console")

# The navigation: (endpoint, label, role needed). Pages not (yet) registered are left out.
NAV = [
    ("console.worklist", "Worklist", StaffRole.VIEWER),
    ("console.patients", "Patients", StaffRole.VIEWER),
    ("console.enroll", "Enroll", StaffRole.NURSE),
    ("console.import_csv", "Import", StaffRole.NURSE),
    ("console.timelines", "Timelines", StaffRole.VIEWER),
    ("console.staff_list", "Staff", StaffRole.ADMIN),
]


def configure(state: BlueprintSetupState) -> None:
    flask_app = state.app
    app: App = flask_app.extensions[EXTENSION]
    https = (app.settings.public_url or "").startswith("https://")
    flask_app.config.update(
        SESSION_COOKIE_NAME="aftercare_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=https,
        # The token lives as long as the sign-in; the server ends that (idle, lifetime).
        WTF_CSRF_TIME_LIMIT=None,
    )
    if not flask_app.secret_key:
        flask_app.secret_key = _secret(app.settings.secret_key)


def _secret(configured: str | None) -> str:
    """The key that signs the console's cookie: derived from AFTERCARE_SECRET_KEY (so it is not
    the very key of the unsubscribe links), or random for this process when that is unset."""
    if configured:
        return hashlib.sha256(b"aftercare console cookie\0" + configured.encode()).hexdigest()
    log.warning(
        "AFTERCARE_SECRET_KEY is not set: console sign-ins end when the server restarts and "
        "are not shared between servers"
    )
    return secrets.token_hex(32)


def template_globals() -> dict[str, Any]:
    account = g.get("staff")
    views = current_app.view_functions
    nav = [
        (endpoint, label)
        for endpoint, label, role in NAV
        if endpoint in views and account is not None and may(account.role, role)
    ]
    return {"csrf_token": generate_csrf, "nav": nav, "account": account, "ago": ago}


def ago(at: datetime | None, now: datetime) -> str:
    """``"2 h ago"``, ``"3 d ago"``, ``"just now"``."""
    if at is None:
        return "never"
    seconds = int((now - at).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"
