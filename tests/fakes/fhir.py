"""A fake FHIR R4 server on 127.0.0.1 for ``aftercare fhir sync``, strict about what it is sent.

Every resource it holds or receives is validated with ``fhir.resources`` (R4B), and so is every
Bundle it answers. It speaks: ``GET /Encounter`` with ``status``, ``date=ge…``, ``_include=
Encounter:patient``, ``_revinclude=Procedure:encounter`` and ``_count`` (anything else is a 400
OperationOutcome, as a strict server answers an unsupported parameter), paged through ``next``
links; ``POST /Communication`` and ``/Observation`` with ``If-None-Exist: identifier=sys|value``
(200 with the existing resource when one matches, else 201); SMART Backend Services
(``/.well-known/smart-configuration`` and a token endpoint that verifies the signed client
assertion with the client's public key) or a fixed bearer token.

Faults for the next requests: ``fail_next(n, status=429, retry_after="0")`` (or 500, 503, ...).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

import jwt
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

SEARCH_PARAMS = {"status", "date", "_include", "_revinclude", "_count"}
TOKEN_PATH = "/auth/token"


@dataclass
class FakeFhir:
    url: str = ""
    token: str | None = "fhir-test-token"  # a fixed bearer token, when no SMART client is set
    smart_client: tuple[str, str] | None = None  # (client id, public key PEM)
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  # "Patient/1" -> JSON
    created: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # "GET /Encounter?…" as received
    page_size: int = 2
    _faults: list[tuple[int, str]] = field(default_factory=list)
    _issued: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- what tests do -------------------------------------------------------------------

    def add(self, resource: dict[str, Any]) -> None:
        model = get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        self.resources[f"{resource['resourceType']}/{model.id}"] = json.loads(
            model.model_dump_json(exclude_none=True)
        )

    def fail_next(self, count: int, status: int = 429, retry_after: str = "0") -> None:
        self._faults.extend([(status, retry_after)] * count)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.created if r["resourceType"] == kind]

    # --- the server ------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        response = self._answer(request)
        return response(environ, start_response)

    def _answer(self, request: Request) -> Response:
        query = request.query_string.decode()
        self.requests.append(f"{request.method} {request.path}" + (f"?{query}" if query else ""))
        with self._lock:
            fault = self._faults.pop(0) if self._faults else None
        if fault:
            status, retry_after = fault
            return _outcome(status, "injected fault", {"Retry-After": retry_after})
        if request.path == "/.well-known/smart-configuration":
            return _json({"token_endpoint": self.url + TOKEN_PATH})
        if request.path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        if not self._authorised(request):
            return _outcome(401, "missing or wrong bearer token")
        if request.path == "/Encounter" and request.method == "GET":
            return self._search(request)
        if request.path in ("/Communication", "/Observation") and request.method == "POST":
            return self._create(request)
        return _outcome(404, f"no route {request.method} {request.path}")

    def _authorised(self, request: Request) -> bool:
        presented = request.headers.get("Authorization", "")
        accepted = set(self._issued) | ({self.token} if self.token else set())
        return any(presented == f"Bearer {t}" for t in accepted)

    def _token(self, request: Request) -> Response:
        if self.smart_client is None:
            return _json({"error": "invalid_client"}, 400)
        client_id, public_key = self.smart_client
        form = request.form
        if form.get("grant_type") != "client_credentials" or form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return _json({"error": "invalid_request"}, 400)
        try:
            claims = jwt.decode(
                form.get("client_assertion", ""),
                public_key,
                algorithms=["RS384", "ES384"],
                audience=self.url + TOKEN_PATH,
                issuer=client_id,
                options={"require": ["exp", "jti", "iss", "sub", "aud"]},
            )
        except jwt.PyJWTError:
            return _json({"error": "invalid_client"}, 401)
        if claims["sub"] != client_id or not form.get("scope"):
            return _json({"error": "invalid_client"}, 401)
        token = uuid.uuid4().hex
        self._issued.add(token)
        return _json({"access_token": token, "token_type": "bearer", "expires_in": 300})

    def _search(self, request: Request) -> Response:
        args = {k: v for k, v in parse_qs(request.query_string.decode()).items()}
        if "_page" in args:
            offset = int(args.pop("_page")[0])
        else:
            offset = 0
            unknown = set(args) - SEARCH_PARAMS
            if unknown:
                return _outcome(400, f"unsupported search parameter {sorted(unknown)[0]}")
        since = next((d[2:] for d in args.get("date", []) if d.startswith("ge")), None)
        status = args.get("status", [None])[0]
        matches = sorted(
            (
                r
                for key, r in self.resources.items()
                if key.startswith("Encounter/")
                and (status is None or r["status"] == status)
                and (since is None or _end(r) >= datetime.fromisoformat(since))
            ),
            key=lambda r: (_end(r), r["id"]),
        )
        # Servers may page in fewer than _count; this one in at most page_size.
        size = min(int(args.get("_count", [self.page_size])[0]), self.page_size)
        page = matches[offset : offset + size]
        entries = [{"resource": r, "search": {"mode": "match"}} for r in page]
        if "Encounter:patient" in args.get("_include", []):
            for ref in dict.fromkeys(r["subject"]["reference"] for r in page):
                if ref in self.resources:
                    entries.append({"resource": self.resources[ref], "search": {"mode": "include"}})
        if "Procedure:encounter" in args.get("_revinclude", []):
            refs = {f"Encounter/{r['id']}" for r in page}
            for key, r in self.resources.items():
                if key.startswith("Procedure/") and r.get("encounter", {}).get("reference") in refs:
                    entries.append({"resource": r, "search": {"mode": "include"}})
        links = [{"relation": "self", "url": self.url + request.full_path}]
        if offset + size < len(matches):
            rest = {k: v for k, v in args.items()} | {"_page": [str(offset + size)]}
            links.append(
                {"relation": "next", "url": f"{self.url}/Encounter?{urlencode(rest, doseq=True)}"}
            )
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{self.url}/{e['resource']['resourceType']}/{e['resource']['id']}",
                    **e,
                }
                for e in entries
            ],
        }
        Bundle.model_validate(bundle)  # the fake never answers what a real server could not
        return _json(bundle)

    def _create(self, request: Request) -> Response:
        kind = request.path.strip("/")
        if request.content_type.split(";")[0] != "application/fhir+json":
            return _outcome(415, "expected application/fhir+json")
        try:
            body = json.loads(request.get_data())
            model = get_fhir_model_class(kind).model_validate(body)
        except ValueError as exc:
            return _outcome(400, f"invalid {kind}: {str(exc).splitlines()[0]}")
        condition = request.headers.get("If-None-Exist", "")
        system, _, value = condition.removeprefix("identifier=").partition("|")
        with self._lock:
            for existing in self.created:
                ids = existing.get("identifier", [])
                if existing["resourceType"] == kind and any(
                    i.get("system") == system and i.get("value") == value for i in ids
                ):
                    return _json(existing, 200)
            stored = json.loads(model.model_dump_json(exclude_none=True))
            stored["id"] = uuid.uuid4().hex[:12]
            self.created.append(stored)
        return _json(stored, 201)


def _end(encounter: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(encounter["period"]["end"])


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(json.dumps(body), status, headers or {}, content_type="application/fhir+json")


def _outcome(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    body = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": text}],
    }
    return _json(body, status, headers)


@pytest.fixture
def fake_fhir() -> Iterator[FakeFhir]:
    fake = FakeFhir()
    server = make_server("127.0.0.1", 0, fake, threaded=True)
    fake.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        thread.join(timeout=5)
