"""The real WSGI app under the real waitress server on a free loopback port, for tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
import requests
from twilio.request_validator import RequestValidator
from waitress.server import create_server

from aftercare.app import App
from aftercare.web import create_app
from aftercare.web.server import server_options

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC_URL = "https://care.example.org"


@dataclass
class RunningWeb:
    url: str  # where the server listens (http://127.0.0.1:PORT)
    app: App

    def signed_post(
        self, path: str, params: dict[str, str], signature: str | None = None
    ) -> requests.Response:
        """POST a form as Twilio would, signed over PUBLIC_URL + path with the auth token."""
        if signature is None:
            signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + path, params)
        return requests.post(
            self.url + path,
            data=urlencode(params),
            timeout=10,
            headers={
                "X-Twilio-Signature": signature,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )


@contextmanager
def running(app: App) -> Iterator[RunningWeb]:
    server = create_server(create_app(app), host="127.0.0.1", port=0, **server_options(threads=4))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield RunningWeb(f"http://127.0.0.1:{server.effective_port}", app)
    finally:
        # Close from inside the server's own loop (closing its sockets from this thread would
        # pull them from under a select() in progress); the loop ends when nothing is left.
        def close_all() -> None:
            for channel in list(server._map.values()):
                channel.close()

        try:
            server.trigger.pull_trigger(close_all)
        except OSError:  # its pipe is already closed (seen under load): no loop to wake
            close_all()
        thread.join(timeout=5)
        server.task_dispatcher.shutdown()


@pytest.fixture
def web(app: App) -> Iterator[RunningWeb]:
    """``aftercare serve`` for the test's App, with Twilio signing and a public URL set."""
    app.settings = app.settings.with_overrides(
        twilio_auth_token=TOKEN, public_url=PUBLIC_URL, secret_key="unsubscribe-secret-0123456789"
    )
    with running(app) as server:
        yield server
