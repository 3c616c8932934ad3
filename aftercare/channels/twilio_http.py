"""Talking to Twilio's API through its SDK: the HTTP client and what its errors mean.

``AFTERCARE_TWILIO_API_URL`` (default ``https://api.twilio.com``) is applied by the SDK's own
extension point, a custom ``http_client``: :class:`TwilioTransport` (requests, for one-off calls
such as ``aftercare doctor``) and twilio_loop.py's (aiohttp, for the channel's sends) rewrite the
API's prefix in every URL the SDK builds (paging links included), so tests and proxies get the
real SDK's requests. The SDK's exceptions drop the response headers, so the transports are where
a 429's ``Retry-After`` is read.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import requests
import urllib3.exceptions
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient

from aftercare.channels.base import ChannelError

TWILIO_API_URL = "https://api.twilio.com"


class TwilioTransport(TwilioHttpClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's requests-based client, sending to ``base_url`` instead of api.twilio.com.

    Not for sharing between threads: it remembers the last response it received.
    """

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self.last_headers: Mapping[str, str] = {}  # of the last response (case-insensitive)

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.last_headers = {}
        response = super().request(method, self._rewrite(url), *args, **kwargs)
        self.last_headers = response.headers or {}
        return response

    def _rewrite(self, url: str) -> str:
        if not url.startswith(TWILIO_API_URL + "/"):
            # Never let a request slip past AFTERCARE_TWILIO_API_URL (to real Twilio from a test).
            raise ValueError(f"unexpected Twilio URL {url.split('?')[0]!r}")
        return self.base_url + url[len(TWILIO_API_URL) :]

    # The SDK logs every request's query string (the patient's number, in list filters) at INFO.
    def log_request(self, kwargs: Any) -> None:
        return None

    def log_response(self, status_code: int, response: Any) -> None:
        return None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


# Permanent: this message can never go out as it is. Transient: it may later. Errors about our
# own account and settings are transient on purpose, as in the email channel: they are the same
# for every message, and the fix is the operator's. Failing each message for good would throw
# away every patient's reminders in the hours before someone notices; retrying keeps them until
# they expire, and the code on the rows ("20003") says what is wrong.

# code -> (permanent, what happened)
TWILIO_CODES: dict[int, tuple[bool, str]] = {
    21211: (True, "invalid 'To' number"),
    21408: (True, "sending to this region is not enabled on the account"),
    21602: (True, "empty message body"),
    21606: (True, "the sender cannot send to this destination"),
    21610: (True, "recipient has opted out"),
    21612: (True, "Twilio cannot route to this number"),
    21614: (True, "'To' number cannot receive SMS"),
    21617: (True, "message body too long"),
    30004: (True, "message blocked by the recipient"),
    30005: (True, "unknown destination handset"),
    30006: (True, "landline or unreachable carrier"),
    30007: (True, "filtered by the carrier"),
    20003: (False, "Twilio refused the credentials (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)"),
    20404: (False, "Twilio does not know this account or resource (TWILIO_ACCOUNT_SID)"),
    20429: (False, "Twilio asked us to slow down"),
    21212: (False, "TWILIO_FROM_NUMBER is not a valid number"),
    21611: (False, "the sender's queue at Twilio is full"),
    30001: (False, "queue overflow at Twilio"),
    30003: (False, "handset unreachable"),
}
OPT_OUT_CODES = {21610}
# What the SDK raises about talking to Twilio over either transport; anything else is a bug and
# propagates. aiohttp's timeouts are TimeoutErrors.
SDK_ERRORS = (
    TwilioException,
    requests.RequestException,
    aiohttp.ClientError,
    TimeoutError,
    json.JSONDecodeError,
)
# Without a known code, the HTTP status decides: these are about us or about Twilio, not about
# the message.
_TRANSIENT_STATUSES = {401, 403, 404, 408, 409, 425, 429}


def classify(exc: Exception, headers: Mapping[str, str] | None = None) -> ChannelError:
    """The ChannelError for one of ``SDK_ERRORS``; ``headers``: the response's, if any."""
    if isinstance(exc, TwilioRestException | TwilioServiceException):
        return _api_error(int(exc.status), _int(exc.code), headers or {})
    page: Any = exc.args[1] if isinstance(exc, TwilioException) and len(exc.args) > 1 else None
    if hasattr(page, "status_code"):  # a list page's error: the SDK keeps only the response
        return _api_error(int(page.status_code), _body_code(page.text), headers or {})
    if isinstance(exc, requests.Timeout | TimeoutError):
        return ChannelError("Twilio did not answer in time", permanent=False, code="timeout")
    if isinstance(exc, requests.RequestException | aiohttp.ClientError):
        what = f"connection to Twilio failed ({_reason(exc)})"
        return ChannelError(what, permanent=False, code="connection")
    # A 2xx answer that is not Twilio's JSON (a proxy's page, say), or not the JSON expected.
    return ChannelError("unreadable answer from Twilio", permanent=False, code="response")


def _api_error(status: int, code: int | None, headers: Mapping[str, str]) -> ChannelError:
    retry_after = retry_after_seconds(headers.get("Retry-After"))
    known = TWILIO_CODES.get(code) if code is not None else None
    if known is not None:
        permanent, what = known
    else:
        permanent = 400 <= status < 500 and status not in _TRANSIENT_STATUSES
        what = "Twilio refused the message" if permanent else "Twilio could not take it now"
    label = str(code if code is not None else status)
    return ChannelError(
        f"{what} (HTTP {status}, code {label})",
        permanent=permanent,
        code=label,
        retry_after=retry_after,
        opt_out=code in OPT_OUT_CODES,
    )


def retry_after_seconds(raw: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: either form of RFC 9110 (seconds, or an HTTP date)."""
    if not raw:
        return None
    try:
        return max(float(raw), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _body_code(text: str) -> int | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    return _int(body.get("code")) if isinstance(body, dict) else None


def _int(code: object) -> int | None:
    try:
        return int(str(code))
    except ValueError:
        return None


def _root(exc: Exception) -> BaseException:
    """What urllib3 said under requests' wrapper (a MaxRetryError and its reason)."""
    inner = exc.args[0] if exc.args and isinstance(exc.args[0], BaseException) else exc
    reason = getattr(inner, "reason", None)
    return reason if isinstance(reason, BaseException) else inner


def _reason(exc: Exception) -> str:
    """A short cause, without the URL or anything a proxy might have said."""
    if isinstance(exc, aiohttp.ClientError):
        return _aiohttp_reason(exc)
    root = _root(exc)
    if isinstance(root, urllib3.exceptions.NewConnectionError):
        return "refused or unreachable"
    if isinstance(root, urllib3.exceptions.SSLError):
        return "TLS"
    if isinstance(root, urllib3.exceptions.ProtocolError | ConnectionError):
        return "connection closed"
    return type(root).__name__


def _aiohttp_reason(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientSSLError) or isinstance(exc.__cause__, ssl.SSLError):
        return "TLS"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "refused or unreachable"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return "connection closed"
    return type(exc).__name__
