"""The console as ``aftercare serve`` runs it (``web.app.create_app``), signed in as a nurse
through the sign-in page, driven in-process: the timings are the server's, not a socket's."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from aftercare.accounts import service
from aftercare.app import App
from aftercare.web.app import create_app

EMAIL, PASSWORD = "bench-nurse@clinic.example", "a long bench password 123"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def csrf(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1) or found.group(2)


def signed_in_client(app: App) -> FlaskClient:
    app.settings = app.settings.with_overrides(secret_key="bench-console-secret-0123456789")
    service.add_staff(
        app.sessions, EMAIL, "Bench Nurse", "nurse", PASSWORD, "bench", app.clock.now()
    )
    client = create_app(app).test_client()
    login = client.get("/login").get_data(as_text=True)
    answer = client.post(
        "/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": csrf(login)}
    )
    assert answer.status_code == 302, answer.status_code
    return client
