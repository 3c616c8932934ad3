"""The twilio SDK's async API (``create_async``, ``stream_async``) on one event loop thread, for
the dispatcher's sending threads.

At Twilio's real latency (100-300 ms a request) a text costs far more waiting than CPU, so many
must be in flight; what limits one process is then the CPU each costs under the GIL. Measured
against the fake Twilio (bench/README.md, "Dispatch at real-world latency"): the SDK's
requests-based client costs about 1.1 ms of CPU a text, a urllib3 pool 0.6 ms, aiohttp on one
loop 0.3 ms (0.43 ms with the hand-off from a sending thread). So the HTTP work happens here, on
one loop with one connection pool sized to the number of sends in flight, and a sending thread
only waits for its answer: ``call`` blocks the calling thread, never the loop.

Every request goes to ``base_url`` instead of api.twilio.com (``AFTERCARE_TWILIO_API_URL``), by
the SDK's own extension point, a custom ``http_client``.
"""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Coroutine, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar

import aiohttp
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

TWILIO_API_URL = "https://api.twilio.com"
T = TypeVar("T")
# The headers of the last response in this task (one task per call): the SDK's exceptions drop
# them, and a 429's Retry-After is read from here.
_last_headers: ContextVar[Mapping[str, str] | None] = ContextVar("twilio_headers", default=None)


class CallFailed(Exception):
    """What the SDK raised, with the headers of the response that made it raise (if any)."""

    def __init__(self, error: Exception, headers: Mapping[str, str]) -> None:
        super().__init__(type(error).__name__)
        self.error, self.headers = error, headers


class LoopTransport(AsyncHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """aiohttp with one pool of ``connections`` keep-alive connections; no retries, no logs (the
    SDK's would print the patient's number from list filters)."""

    def __init__(self, base_url: str, timeout: float, connections: int) -> None:
        super().__init__(None, True, timeout)
        self.base_url = base_url.rstrip("/")
        connector = aiohttp.TCPConnector(limit=connections, limit_per_host=connections)
        # Per connect and per read, as the requests-based client had it; no overall limit, so a
        # slow list page still arrives.
        limits = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        self.session = aiohttp.ClientSession(connector=connector, timeout=limits)

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = _basic(*auth)
        async with self.session.request(
            method,
            self.rewrite(url),
            params=_fields(params),
            data=_fields(data),
            headers=sent,
            allow_redirects=False,
        ) as answer:
            text = await answer.text()
            _last_headers.set(answer.headers)
            return Response(answer.status, text, answer.headers)

    def rewrite(self, url: str) -> str:
        if not url.startswith(TWILIO_API_URL + "/"):
            # Never let a request slip past AFTERCARE_TWILIO_API_URL (to real Twilio from a test).
            raise ValueError(f"unexpected Twilio URL {url.split('?')[0]!r}")
        return self.base_url + url[len(TWILIO_API_URL) :]

    async def close(self) -> None:
        await self.session.close()


class TwilioLoop:
    """An SDK client whose requests run on this object's own event loop thread."""

    def __init__(
        self, account_sid: str, auth_token: str, base_url: str, timeout: float, connections: int
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="twilio-http", daemon=True
        )
        self._thread.start()
        self._transport = self.call(_made(LoopTransport, base_url, timeout, connections))
        # A non-empty `environment` keeps the SDK from reading os.environ (TWILIO_EDGE and
        # TWILIO_REGION there would move requests to other hosts).
        self.client = Client(
            account_sid,
            auth_token,
            http_client=self._transport,
            environment={"TWILIO_ACCOUNT_SID": account_sid},
        )

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for it here; what the SDK raises comes back as
        :class:`CallFailed` with the response's headers."""
        return asyncio.run_coroutine_threadsafe(_keeping_headers(coroutine), self._loop).result()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.call(self._transport.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _keeping_headers(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return await coroutine
    except Exception as exc:
        raise CallFailed(exc, _last_headers.get() or {}) from None


async def _made(kind: type[T], *args: Any) -> T:
    """``kind(*args)`` built on the loop: an aiohttp session belongs to the loop it was made on."""
    return kind(*args)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _fields(values: dict[str, object] | None) -> list[tuple[str, str]] | None:
    """The SDK's form fields and query parameters as aiohttp takes them (lists repeat a key)."""
    if not values:
        return None
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        items = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, str(item)) for item in items]
    return pairs
