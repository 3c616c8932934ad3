"""The REST API through the real server with real keys: enrollments made and changed as the CLI
makes them, every answer as its OpenAPI description says, every use audited by the key's name."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
import requests
from sqlalchemy import select

from aftercare.api.openapi import SPEC
from aftercare.app import App
from aftercare.models import ApiKey
from tests.conftest import CliRun
from tests.web_server import RunningWeb, running

ENROLLMENT = {
    "first_name": "Ana",
    "phone": "+12025550143",
    "email": "ana@example.org",
    "timezone": "America/Chicago",
    "procedure": "kyphoplasty",
    "discharged_at": "2026-11-23T10:30-06:00",
    "external_id": "MRN0042",
    "language": "es",
}


@pytest.fixture
def api(app: App) -> Iterator[RunningWeb]:
    with running(app) as server:
        yield server


def new_key(run: CliRun, name: str = "mirth", role: str = "nurse") -> str:
    result = run("apikey", "create", "--name", name, "--role", role, "--json")
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["key"])


def call(
    api: RunningWeb,
    method: str,
    path: str,
    key: str | None,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> requests.Response:
    sent = {"Authorization": f"Bearer {key}"} if key else {}
    response = requests.request(
        method, api.url + path, json=body, headers=sent | (headers or {}), timeout=10
    )
    conforms(response, method, path)
    return response


def conforms(response: requests.Response, method: str, path: str) -> None:
    """The answer is one the OpenAPI description documents, in status, media type and shape."""
    template = _template(path.split("?")[0])
    documented = SPEC["paths"][template][method.lower()]["responses"]
    assert str(response.status_code) in documented, (response.status_code, response.text)
    (media, content), *_ = documented[str(response.status_code)]["content"].items()
    assert response.headers["Content-Type"].split(";")[0] == media
    schema = {"allOf": [content["schema"]], "components": SPEC["components"]}
    jsonschema_rs.validator_for(schema).validate(response.json())


def _template(path: str) -> str:
    parts = path.split("/")
    if len(parts) > 4 and parts[4].isdigit():
        parts[4] = "{enrollment_id}"
    return "/".join(parts)


def test_a_key_is_shown_once_and_stored_only_as_a_digest(app: App, run: CliRun):
    key = new_key(run)
    assert key.startswith("ak_")
    listed = run("apikey", "list", "--json").output
    assert key not in listed
    assert json.loads(listed)[0] | {"created_at": None} == {
        "name": "mirth",
        "role": "nurse",
        "id": key[:11],
        "created_at": None,
        "created_by": "staff:test",
        "last_used_at": None,
        "revoked_at": None,
    }
    with app.sessions() as session:
        stored = session.scalars(select(ApiKey)).one()
    assert key not in (stored.digest, stored.key_id)
    again = run("apikey", "create", "--name", "mirth", "--role", "nurse")
    assert again.exit_code == 1
    assert again.stderr.strip() == "error: --name: a key named 'mirth' exists (revoke it first)"
    bad_role = run("apikey", "create", "--name", "x", "--role", "root")
    assert bad_role.stderr.strip() == (
        "error: --role: unknown role 'root'; choose from viewer, nurse, admin"
    )


def test_enrolling_through_the_api_gives_what_the_cli_shows(api: RunningWeb, run: CliRun):
    key = new_key(run)
    created = call(api, "POST", "/api/v1/enrollments", key, ENROLLMENT)
    assert created.status_code == 201
    body = created.json()
    assert body.pop("created") is True
    shown = without_api_requests(
        json.loads(run("patients", "show", str(body["id"]), "--json").output)
    )
    assert body == shown
    assert shown["history"][0]["actor"] == "api:mirth"
    fetched = call(api, "GET", f"/api/v1/enrollments/{body['id']}", key)
    assert without_api_requests(fetched.json()) == shown
    again = call(api, "POST", "/api/v1/enrollments", key, ENROLLMENT)
    assert (again.status_code, again.json()["id"], again.json()["created"]) == (
        200,
        body["id"],
        False,
    )


def without_api_requests(shown: dict[str, Any]) -> dict[str, Any]:
    """The enrollment without the audit events of API requests (each request adds one)."""
    return shown | {"history": [e for e in shown["history"] if e["kind"] != "api_request"]}


def test_an_idempotency_key_makes_a_repeat_get_the_first_answer(api: RunningWeb, run: CliRun):
    key = new_key(run)
    headers = {"Idempotency-Key": "mirth-msg-0001"}
    first = call(api, "POST", "/api/v1/enrollments", key, ENROLLMENT, headers)
    repeat = call(api, "POST", "/api/v1/enrollments", key, ENROLLMENT, headers)
    assert (first.status_code, repeat.status_code) == (201, 201)
    assert repeat.json() == first.json()
    assert repeat.headers["Idempotent-Replayed"] == "true"
    other = call(
        api, "POST", "/api/v1/enrollments", key, ENROLLMENT | {"phone": "+12025550100"}, headers
    )
    assert other.status_code == 422
    assert other.json()["field"] == "Idempotency-Key"


def test_a_bad_member_is_a_problem_naming_it_and_nothing_is_written(
    api: RunningWeb, run: CliRun, row_counts: Any
):
    key = new_key(run)
    before = row_counts()
    for change, field in [
        ({"phone": "999"}, "phone"),
        ({"timezone": "EST"}, "timezone"),
        ({"discharged_at": "2026-11-23T10:30"}, "discharged_at"),
        ({"procedure": "knee"}, "procedure"),
        ({"first_name": None}, "first_name"),
        ({"channels": 5}, "channels"),
    ]:
        answer = call(api, "POST", "/api/v1/enrollments", key, ENROLLMENT | change)
        assert answer.status_code == 422, change
        problem = answer.json()
        assert (problem["status"], problem["field"]) == (422, field)
        assert "999" not in problem["detail"]
    after = row_counts()
    assert {t: after[t] - before[t] for t in ("patient", "enrollment", "message")} == {
        "patient": 0,
        "enrollment": 0,
        "message": 0,
    }
    not_json = requests.post(
        api.url + "/api/v1/enrollments",
        data="first_name=Ana",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "text/plain"},
        timeout=10,
    )
    conforms(not_json, "POST", "/api/v1/enrollments")
    assert not_json.status_code == 415


def test_keys_are_checked_revocable_and_roles_limit_writes(api: RunningWeb, run: CliRun):
    nurse = new_key(run)
    viewer = new_key(run, "reports", "viewer")
    assert call(api, "POST", "/api/v1/enrollments", None, ENROLLMENT).status_code == 401
    forged = nurse[:-4] + "AAAA"
    assert call(api, "POST", "/api/v1/enrollments", forged, ENROLLMENT).status_code == 401
    refused = call(api, "POST", "/api/v1/enrollments", viewer, ENROLLMENT)
    assert refused.status_code == 403
    created = call(api, "POST", "/api/v1/enrollments", nurse, ENROLLMENT).json()
    assert call(api, "GET", f"/api/v1/enrollments/{created['id']}", viewer).status_code == 200
    assert run("apikey", "revoke", "mirth").exit_code == 0
    after = call(api, "GET", f"/api/v1/enrollments/{created['id']}", nurse)
    assert after.status_code == 401
    assert after.headers["WWW-Authenticate"] == "Bearer"


def test_cancel_pause_resume_and_reschedule(api: RunningWeb, run: CliRun):
    key = new_key(run)
    enrollment_id = call(api, "POST", "/api/v1/enrollments", key, ENROLLMENT).json()["id"]
    base = f"/api/v1/enrollments/{enrollment_id}"
    paused = call(api, "POST", f"{base}/pause", key)
    assert paused.json()["status"] == "paused"
    assert call(api, "POST", f"{base}/pause", key).status_code == 409
    assert call(api, "POST", f"{base}/resume", key, {"reason": "back"}).json()["status"] == "active"
    moved = call(
        api, "POST", f"{base}/reschedule", key, {"discharged_at": "2026-11-23T12:00-06:00"}
    )
    assert moved.json()["discharged_at"] == "2026-11-23T18:00:00Z"
    no_reason = call(api, "POST", f"{base}/cancel", key, {})
    assert (no_reason.status_code, no_reason.json()["field"]) == (422, "reason")
    cancelled = call(api, "POST", f"{base}/cancel", key, {"reason": "declined"})
    assert (cancelled.json()["status"], cancelled.json()["status_reason"]) == (
        "cancelled",
        "declined",
    )
    assert call(api, "POST", "/api/v1/enrollments/999999/pause", key).status_code == 404


def test_patients_are_found_by_external_id(api: RunningWeb, run: CliRun):
    key = new_key(run)
    call(api, "POST", "/api/v1/enrollments", key, ENROLLMENT)
    found = call(api, "GET", "/api/v1/patients?external_id=MRN0042", key).json()
    listed = json.loads(run("patients", "list", "--json").output)
    assert found == listed
    assert call(api, "GET", "/api/v1/patients?external_id=nobody", key).json() == []
    missing = call(api, "GET", "/api/v1/patients", key)
    assert (missing.status_code, missing.json()["field"]) == (422, "external_id")
    misspelt = call(api, "GET", "/api/v1/patients?externalid=MRN0042", key)
    assert (misspelt.status_code, misspelt.json()["field"]) == (422, "externalid")


def test_every_use_of_a_key_is_audited_with_its_name(api: RunningWeb, run: CliRun):
    key = new_key(run)
    viewer = new_key(run, "reports", "viewer")
    call(api, "POST", "/api/v1/enrollments", key, ENROLLMENT)
    call(api, "POST", "/api/v1/enrollments", viewer, ENROLLMENT)
    events = json.loads(run("audit", "--since", "7d", "--json").output)
    uses = [(e["actor"], e["detail"]["status"]) for e in events if e["kind"] == "api_request"]
    assert uses == [("api:mirth", 201), ("api:reports", 403)]
    assert "apikey_created" in [e["kind"] for e in events]


def test_the_openapi_description_is_served(api: RunningWeb):
    answer = requests.get(api.url + "/api/v1/openapi.json", timeout=10)
    assert answer.status_code == 200
    assert answer.json() == SPEC
