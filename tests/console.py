"""The console of ``aftercare serve`` under the real waitress server, staff accounts to sign in
with, and a browser-like HTTP client (cookies kept, forms posted with the page's CSRF token)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

from aftercare.accounts import service
from aftercare.app import App
from tests.web_server import running

PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


@dataclass
class Browser:
    """One person's browser: its own cookies."""

    url: str
    http: requests.Session

    def get(self, path: str, **kwargs: object) -> requests.Response:
        return self.http.get(self.url + path, allow_redirects=False, timeout=10, **kwargs)  # type: ignore[arg-type]

    def post(
        self, path: str, data: dict[str, str], from_page: str | None = None
    ) -> requests.Response:
        """POST as the form on ``from_page`` (default: ``path``) would, with its CSRF token."""
        page = self.http.get(self.url + (from_page or path), timeout=10)
        return self.http.post(
            self.url + path,
            data={"csrf_token": csrf_token(page.text), **data},
            allow_redirects=False,
            timeout=10,
        )

    def sign_in(self, email: str, password: str = PASSWORD) -> requests.Response:
        return self.post("/login", {"email": email, "password": password})


def csrf_token(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1) or found.group(2)


@dataclass
class RunningConsole:
    url: str
    app: App

    def browser(self) -> Browser:
        return Browser(self.url, requests.Session())


@pytest.fixture
def console(app: App) -> Iterator[RunningConsole]:
    app.settings = app.settings.with_overrides(secret_key="console-test-secret-0123456789")
    with running(app) as web:
        yield RunningConsole(web.url, app)


@pytest.fixture
def make_staff(app: App) -> Callable[..., service.StaffAccount]:
    """Factory: a staff account (role nurse unless told), password :data:`PASSWORD`."""

    def make(
        email: str = "nina@clinic.example",
        role: str = "nurse",
        name: str = "Nina Ortiz",
        password: str = PASSWORD,
    ) -> service.StaffAccount:
        return service.add_staff(app.sessions, email, name, role, password, "test", app.clock.now())

    return make
