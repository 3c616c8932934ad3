"""A small FHIR R4 REST client: searches with paging, conditional creates, and the two ways of
authenticating that servers offer for system-to-system access.

* A bearer token from settings (``AFTERCARE_FHIR_TOKEN``).
* SMART Backend Services: a JWT client assertion signed with the client's private key (RS384 or
  ES384), exchanged at the token endpoint (from ``.well-known/smart-configuration``) for an
  access token, which is reused until a minute before it expires.

429 and 5xx answers are retried (honouring Retry-After, else doubling from one second) up to
``attempts`` times; other errors raise FhirError with the status and the OperationOutcome's text.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt
import requests
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.observation import Observation

from aftercare.errors import AftercareError

FHIR_JSON = "application/fhir+json"
MAX_PAGES = 1000  # a server whose "next" link loops must not keep the sync running forever


class FhirError(AftercareError):
    """The FHIR server refused a request, or answered something that is not FHIR."""


class Auth(Protocol):
    def header(self, http: requests.Session, now: float) -> str: ...


@dataclass(frozen=True)
class BearerToken:
    token: str

    def header(self, http: requests.Session, now: float) -> str:
        return f"Bearer {self.token}"


@dataclass
class SmartBackend:
    """SMART App Launch 2.x Backend Services (client-confidential-asymmetric)."""

    base: str
    client_id: str
    private_key: str  # PEM
    key_id: str | None = None
    scope: str = "system/Encounter.read system/Patient.read system/Procedure.read"
    token_url: str | None = None
    _token: str | None = field(default=None, repr=False)
    _expires: float = 0.0

    def header(self, http: requests.Session, now: float) -> str:
        if self._token is None or now >= self._expires:
            self._token, lifetime = self._fetch(http, now)
            self._expires = now + max(lifetime - 60, 0)
        return f"Bearer {self._token}"

    def _fetch(self, http: requests.Session, now: float) -> tuple[str, int]:
        token_url = self.token_url or self._discover(http)
        algorithm = "ES384" if "EC PRIVATE KEY" in self.private_key else "RS384"
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "exp": int(now) + 300,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self.key_id} if self.key_id else None
        assertion = jwt.encode(claims, self.private_key, algorithm=algorithm, headers=headers)
        response = http.post(
            token_url,
            data={
                "grant_type": "client_credentials",
                "scope": self.scope,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
            timeout=30,
        )
        if response.status_code != 200:
            raise FhirError(f"FHIR token endpoint: HTTP {response.status_code}")
        body = response.json()
        return str(body["access_token"]), int(body.get("expires_in", 300))

    def _discover(self, http: requests.Session) -> str:
        response = http.get(f"{self.base}/.well-known/smart-configuration", timeout=30)
        if response.status_code != 200:
            raise FhirError(f"FHIR smart-configuration: HTTP {response.status_code}")
        self.token_url = str(response.json()["token_endpoint"])
        return self.token_url


class FhirClient:
    def __init__(
        self,
        base: str,
        auth: Auth | None,
        attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base = base.rstrip("/")
        self._auth = auth
        self._attempts = attempts
        self._sleep = sleep
        self._clock = clock
        self._http = requests.Session()

    def search(self, resource: str, params: Mapping[str, str]) -> Iterator[Bundle]:
        """Each page of the search, following the server's ``next`` links."""
        url: str | None = f"{self.base}/{resource}"
        query: Mapping[str, str] | None = params
        for _ in range(MAX_PAGES):
            if url is None:
                return
            body = self._request("GET", url, params=query)
            try:
                page = Bundle.model_validate(body)
            except ValueError as exc:
                raise FhirError(f"FHIR search: not a valid Bundle ({_first_error(exc)})") from None
            yield page
            url = next((link.url for link in page.link or () if link.relation == "next"), None)
            query = None  # the next link carries the whole query
        raise FhirError(f"FHIR search: more than {MAX_PAGES} pages (a looping next link?)")

    def create_if_none_exist(self, resource: Communication | Observation, query: str) -> str:
        """POST the resource unless one matching ``query`` exists; its server id either way."""
        kind = resource.get_resource_type()
        body = self._request(
            "POST",
            f"{self.base}/{kind}",
            data=resource.model_dump_json(exclude_none=True),
            headers={"If-None-Exist": query, "Content-Type": FHIR_JSON},
        )
        return str(body.get("id", "")) if isinstance(body, dict) else ""

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"Accept": FHIR_JSON} | kwargs.pop("headers", {})
        delay = 1.0
        for attempt in range(1, self._attempts + 1):
            if self._auth is not None:
                headers["Authorization"] = self._auth.header(self._http, self._clock())
            try:
                response = self._http.request(method, url, headers=headers, timeout=60, **kwargs)
            except requests.RequestException as exc:
                if attempt == self._attempts:
                    raise FhirError(f"FHIR server unreachable ({type(exc).__name__})") from None
                self._sleep(delay)
                delay *= 2
                continue
            if response.status_code == 429 or response.status_code >= 500:
                if attempt == self._attempts:
                    raise FhirError(
                        f"FHIR server: HTTP {response.status_code} after {attempt} tries"
                    )
                self._sleep(_retry_after(response, delay))
                delay *= 2
                continue
            if response.status_code >= 400:
                raise FhirError(f"FHIR server: HTTP {response.status_code}{_outcome(response)}")
            if not response.content:
                return {}
            try:
                return response.json()
            except ValueError:
                raise FhirError("FHIR server: the answer is not JSON") from None
        raise AssertionError("unreachable")


def _retry_after(response: requests.Response, default: float) -> float:
    try:
        return max(0.0, min(float(response.headers.get("Retry-After", default)), 300.0))
    except ValueError:
        return default


def _outcome(response: requests.Response) -> str:
    """The OperationOutcome's first diagnostics (servers say there what was wrong)."""
    try:
        issues = response.json().get("issue") or []
        text = issues[0].get("diagnostics") or issues[0].get("details", {}).get("text")
    except (ValueError, AttributeError, IndexError):
        return ""
    return f": {str(text)[:200]}" if text else ""


def _first_error(exc: ValueError) -> str:
    return str(exc).splitlines()[0][:200]
