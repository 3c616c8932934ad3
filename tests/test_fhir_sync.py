"""``aftercare fhir sync`` against a strict fake FHIR R4 server: finished Encounters become
enrollments once, through paging, 429s and 5xx, with a bearer token or SMART backend services;
write-back creates each Communication and pain Observation once."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import delete, select, update

from aftercare.app import App
from aftercare.db import transaction
from aftercare.models import FhirWriteback, Message, Reply
from tests.conftest import NOW, CliRun
from tests.fakes.fhir import FakeFhir

BUNDLE = Path(__file__).resolve().parent.parent / "examples" / "fhir" / "finished-encounters.json"


def load_example(fake: FakeFhir, suffix: str = "", mrn: str = "MRN5501", end: str = "") -> None:
    """The example's Encounter, Patient and Procedure, renamed with ``suffix``."""
    for entry in json.loads(BUNDLE.read_text())["entry"]:
        resource = copy.deepcopy(entry["resource"])
        resource["id"] += suffix
        for key in ("subject", "encounter"):
            if key in resource:
                resource[key]["reference"] += suffix
        if resource["resourceType"] == "Patient":
            resource["identifier"][0]["value"] = mrn
        if resource["resourceType"] == "Encounter" and end:
            resource["period"]["end"] = end
        fake.add(resource)


@pytest.fixture
def fhir_app(app: App, fake_fhir: FakeFhir) -> App:
    app.settings = app.settings.with_overrides(
        facility_timezone="America/New_York", fhir_token=fake_fhir.token
    )
    return app


def sync(run: CliRun, fake: FakeFhir, *extra: str) -> tuple[int, dict[str, Any]]:
    result = run("fhir", "sync", "--base", fake.url, "--json", *extra)
    return result.exit_code, json.loads(result.stdout)


def patients(run: CliRun) -> list[dict[str, Any]]:
    return list(json.loads(run("patients", "list", "--json").output))


def test_finished_encounters_on_several_pages_are_enrolled_once(
    fhir_app: App, fake_fhir: FakeFhir, run: CliRun
):
    for n in range(5):
        load_example(fake_fhir, f"-{n}", f"MRN55{n}", f"2026-11-23T1{n}:15:00-05:00")
    code, report = sync(run, fake_fhir)
    assert code == 0
    assert (report["seen"], report["outcomes"]) == (5, {"enrolled": 5})
    assert report["cursor"] == "2026-11-23T19:15:00Z"
    assert sum("_page=" in r for r in fake_fhir.requests) == 2  # three pages of two
    first = fake_fhir.requests[0]
    assert "status=finished" in first and "_include=Encounter%3Apatient" in first
    assert "_revinclude=Procedure%3Aencounter" in first
    enrolled = patients(run)
    assert sorted(e["external_id"] for e in enrolled) == [f"MRN55{n}" for n in range(5)]
    one = json.loads(run("patients", "show", str(enrolled[0]["id"]), "--json").output)
    assert (one["procedure"], one["phone"], one["language"]) == (
        "vertebroplasty",
        "+12025550155",  # the mobile, not the home line listed first
        "en",
    )
    code, again = sync(run, fake_fhir)
    assert code == 0
    assert again["outcomes"] == {"resent": 5}  # seen before, by Encounter id: nothing new
    assert len(patients(run)) == 5


def test_429_and_5xx_answers_are_retried(fhir_app: App, fake_fhir: FakeFhir, run: CliRun):
    load_example(fake_fhir)
    fake_fhir.fail_next(1, status=429)
    fake_fhir.fail_next(1, status=503)
    code, report = sync(run, fake_fhir)
    assert (code, report["outcomes"]) == (0, {"enrolled": 1})
    assert len(fake_fhir.requests) == 3


def test_a_server_that_keeps_failing_is_one_line_and_exit_1(
    fhir_app: App, fake_fhir: FakeFhir, run: CliRun
):
    fake_fhir.fail_next(10, status=500)
    result = run("fhir", "sync", "--base", fake_fhir.url)
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: FHIR server: HTTP 500 after 5 tries"


def test_a_wrong_token_is_refused_by_the_server(fhir_app: App, fake_fhir: FakeFhir, run: CliRun):
    fhir_app.settings = fhir_app.settings.with_overrides(fhir_token="not-the-token")
    result = run("fhir", "sync", "--base", fake_fhir.url)
    assert result.exit_code == 1
    assert "HTTP 401" in result.stderr


def test_smart_backend_services_sign_a_client_assertion(
    fhir_app: App, fake_fhir: FakeFhir, run: CliRun
):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    fake_fhir.token = None
    fake_fhir.smart_client = ("aftercare-client", public_pem)
    fhir_app.settings = replace(
        fhir_app.settings,
        fhir_token=None,
        fhir_client_id="aftercare-client",
        fhir_private_key=private_pem,
    )
    load_example(fake_fhir)
    code, report = sync(run, fake_fhir)
    assert (code, report["outcomes"]) == (0, {"enrolled": 1})
    assert fake_fhir.requests[:2] == [
        "GET /.well-known/smart-configuration",
        "POST /auth/token",
    ]


def test_an_encounter_with_no_usable_phone_is_reported_and_the_others_enrolled(
    fhir_app: App, fake_fhir: FakeFhir, run: CliRun
):
    load_example(fake_fhir, "-a", "MRN-A")
    load_example(fake_fhir, "-b", "MRN-B")
    patient = fake_fhir.resources["Patient/pat-5501-b"]
    patient["telecom"] = [{"system": "email", "value": "b@example.org"}]
    code, report = sync(run, fake_fhir)
    assert code == 1
    assert report["outcomes"] == {"enrolled": 1, "error": 1}
    assert report["errors"] == ["Encounter/enc-5501-b: Patient.telecom: is required"]
    assert [e["external_id"] for e in patients(run)] == ["MRN-A"]


def test_write_back_creates_each_communication_and_pain_observation_once(
    fhir_app: App, fake_fhir: FakeFhir, run: CliRun
):
    load_example(fake_fhir)
    sync(run, fake_fhir)
    (enrolled,) = patients(run)
    with transaction(fhir_app.sessions) as session:
        first = session.scalar(
            select(Message.id).where(Message.enrollment_id == enrolled["id"]).limit(1)
        )
        session.execute(
            update(Message).where(Message.id == first).values(status="sent", sent_at=NOW)
        )
        session.add(
            Reply(
                provider_id="SM-reply-1",
                received_at=NOW,
                from_number="+12025550155",
                enrollment_id=enrolled["id"],
                body="4",
                kind="pain",
                pain_score=4,
            )
        )
    code, report = sync(run, fake_fhir, "--write-back")
    assert (code, report["written_back"]) == (0, 3)
    communications = fake_fhir.of_type("Communication")
    assert len(communications) == 2
    assert all(c["subject"]["reference"] == "Patient/pat-5501" for c in communications)
    (observation,) = fake_fhir.of_type("Observation")
    assert observation["code"]["coding"][0]["code"] == "72514-3"
    assert observation["valueInteger"] == 4
    # An answer lost after the server created them: the retry finds them by identifier.
    with transaction(fhir_app.sessions) as session:
        session.execute(delete(FhirWriteback))
    code, report = sync(run, fake_fhir, "--write-back")
    assert (code, report["written_back"]) == (0, 3)
    assert len(fake_fhir.created) == 3
