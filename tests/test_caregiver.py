"""A caregiver or driver: their own texts, their own STOP, their replies attributed to them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from aftercare import inbox
from aftercare.app import App
from aftercare.models import Enrollment, Message, Patient
from tests.conftest import CliRun

SAM = "+12025550178"
CAREGIVER = {"caregiver-name": "Sam", "caregiver-phone": SAM, "caregiver-language": "es"}


def enroll(run: CliRun, enroll_args: Any, **more: str) -> int:
    result = run(*enroll_args(**CAREGIVER, **more), "--json")
    assert result.exit_code == 0, result.output
    enrollment_id: int = json.loads(result.stdout)["id"]
    return enrollment_id


def caregiver_of(app: App, enrollment_id: int) -> Enrollment:
    with app.sessions() as session:
        found = session.scalar(select(Enrollment).where(Enrollment.caregiver_for == enrollment_id))
        assert found is not None
        session.expunge(found)
        return found


def messages(app: App, enrollment_id: int) -> list[tuple[str, str, str]]:
    with app.sessions() as session:
        rows = session.execute(
            select(Message.step, Message.channel, Message.status)
            .where(Message.enrollment_id == enrollment_id)
            .order_by(Message.due_at, Message.id)
        )
        return [tuple(row) for row in rows]


def text(app: App, body: str, number: str) -> str | None:
    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": body}
    return inbox.receive(app, form)


def test_the_caregiver_gets_the_first_days_and_warning_sign_steps_on_their_own_number(
    run: CliRun, enroll_args, app: App
) -> None:
    patient = enroll(run, enroll_args)

    caregiver = caregiver_of(app, patient)

    assert (caregiver.audience, caregiver.status) == ("caregiver", "active")
    assert messages(app, caregiver.id) == [
        ("welcome-home", "sms", "pending"),
        ("bandage-off", "sms", "pending"),
    ]
    with app.sessions() as session:
        person = session.get_one(Patient, caregiver.patient_id)
        assert (person.first_name, person.phone, person.language) == ("Sam", SAM, "es")
    assert ("soreness-check", "sms", "pending") in messages(app, patient)


def test_a_booked_caregiver_gets_the_drivers_text_and_the_rest_at_discharge(
    run: CliRun, enroll_args, app: App
) -> None:
    patient = enroll(
        run, enroll_args, **{"discharged-at": None, "procedure-at": "2026-11-25T09:00-06:00"}
    )
    caregiver = caregiver_of(app, patient).id
    assert messages(app, caregiver) == [("before-procedure", "sms", "pending")]

    result = run("discharge", str(patient), "--discharged-at", "2026-11-25T12:30-06:00")

    assert result.exit_code == 0, result.output
    assert [m[0] for m in messages(app, caregiver)] == [
        "before-procedure",
        "welcome-home",
        "bandage-off",
    ]


def test_the_caregiver_is_addressed_as_the_driver_in_their_language(
    run: CliRun, enroll_args, clock
) -> None:
    enroll(run, enroll_args, **{"discharged-at": None, "procedure-at": "2026-11-25T09:00-06:00"})
    clock.set(datetime(2026, 11, 25, 0, 5, tzinfo=UTC))  # 18:05 in Chicago, the evening before

    result = run("run", "--once", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "Mañana usted lleva a casa a un paciente" in result.stdout  # Sam reads Spanish
    assert "For tomorrow: an adult must drive you home." in result.stdout  # Ana, English


def test_the_caregivers_stop_stops_only_the_caregivers_texts(
    run: CliRun, enroll_args, app: App
) -> None:
    patient = enroll(run, enroll_args)
    caregiver = caregiver_of(app, patient).id

    answer = text(app, "STOP", SAM)
    run("run", "--once", "--dry-run")

    assert answer is not None and answer.startswith("No recibirá más mensajes")
    assert {status for _, _, status in messages(app, caregiver)} == {"suppressed"}
    assert "suppressed" not in {status for _, _, status in messages(app, patient)}


def test_a_caregivers_reply_is_attributed_to_the_caregiver_in_the_inbox(
    run: CliRun, enroll_args, app: App
) -> None:
    patient = enroll(run, enroll_args)
    caregiver = caregiver_of(app, patient).id

    text(app, "She has a fever tonight", SAM)
    rows = json.loads(run("inbox", "--json").stdout)
    table = run("inbox").stdout

    assert [r["patient"]["caregiver_for"] for r in rows] == [patient]
    assert rows[0]["patient"]["enrollment_id"] == caregiver
    assert f"Sam, caregiver (for enrollment {patient})" in table


def test_cancelling_the_patient_cancels_the_caregivers_texts(
    run: CliRun, enroll_args, app: App
) -> None:
    patient = enroll(run, enroll_args)
    caregiver = caregiver_of(app, patient).id

    result = run("cancel", str(patient), "--reason", "patient declined")

    assert result.exit_code == 0, result.output
    assert {status for _, _, status in messages(app, caregiver)} == {"cancelled"}


def test_a_caregiver_needs_a_phone_of_their_own(run: CliRun, enroll_args) -> None:
    no_phone = run(*enroll_args(**{"caregiver-name": "Sam"}))
    same_phone = run(*enroll_args(**{"caregiver-name": "Sam", "caregiver-phone": "+12025550143"}))

    assert no_phone.exit_code == same_phone.exit_code == 1
    assert "--caregiver-phone: is required for a caregiver" in no_phone.stderr
    assert "--caregiver-phone: is the patient's own number" in same_phone.stderr
