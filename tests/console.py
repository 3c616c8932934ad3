"""The console under the real waitress server, staff accounts to sign in with, and a browser-like
HTTP client (cookies kept, forms posted with the CSRF token the page gave)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests
from waitress.server import create_server

from aftercare.accounts import service
from aftercare.app import App
from aftercare.console.standalone import create_console_app

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


@contextmanager
def serving(app: App) -> Iterator[RunningConsole]:
    server = create_server(create_console_app(app), host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield RunningConsole(f"http://127.0.0.1:{server.effective_port}", app)
    finally:
        server.trigger.pull_trigger(lambda: [c.close() for c in list(server._map.values())])
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()


@pytest.fixture
def console(app: App) -> Iterator[RunningConsole]:
    app.settings = app.settings.with_overrides(secret_key="console-test-secret-0123456789")
    with serving(app) as running:
        yield running


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
