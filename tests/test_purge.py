"""``aftercare purge``: data retention on SQLite and PostgreSQL. Patients are enrolled years ago
on the test clock, their timelines run to the end (or are cancelled), then the clock comes back
to today and the purge runs through the CLI."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import JSON, String, func, select

import aftercare.cli.purge  # noqa: F401  (registers the command)
from aftercare import inbox
from aftercare.channels.memory import MemoryChannel
from aftercare.daemon import next_due
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher
from aftercare.enrollment import parse_request
from aftercare.models import Base, Enrollment, Event, Message, Patient, Reply, Suppression
from aftercare.store import lifecycle
from aftercare.store.enrollments import enroll_many
from tests.conftest import NOW

YEARS_AGO = NOW - timedelta(days=3 * 365)
MONTHS_AGO = NOW - timedelta(days=100)


@pytest.fixture
def enroll(app, clock):
    """Function: enroll a patient now (on the test clock); returns the enrollment id."""

    def make(first_name, phone, **fields):
        values = {
            "first_name": first_name,
            "phone": phone,
            "timezone": "America/Chicago",
            "procedure": "kyphoplasty",
            "discharged_at": clock.now().isoformat(),
        } | fields
        request = parse_request(values, app.catalog, clock.now())
        with transaction(app.sessions) as session:
            (result,) = enroll_many(session, [request], app.settings, clock.now(), "staff:test")
        return result.enrollment_id

    return make


@pytest.fixture
def finish(app, clock):
    """Function: send a whole timeline (every enrollment's) to the end, as the daemon would."""

    def run_out() -> None:
        channels = {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")}
        dispatcher = Dispatcher(app.sessions, channels, app.catalog, app.settings, clock, "w",
                                rng=random.Random(3))  # fmt: skip
        while (due := next_due(dispatcher)) is not None:
            clock.set(due)
            dispatcher.dispatch_due()
        dispatcher.close()

    return run_out


@pytest.fixture
def cancel(app, clock):
    def make(enrollment_id, reason="patient declined"):
        with transaction(app.sessions) as session:
            lifecycle.cancel(session, enrollment_id, reason, "staff:test", clock.now())

    return make


@pytest.fixture
def texts(app):
    """Function: ``number`` texts ``body`` to the clinic now."""

    def send(number, body):
        form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": body}
        inbox.receive(app, form)

    return send


def purge(run, *args):
    result = run("purge", "--older-than", "365d", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def text_values(app):
    """Every value of every text column (and JSON column, as text) of every table."""
    values = []
    with app.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | JSON)]
            for row in connection.execute(select(*columns)) if columns else ():
                values += [json.dumps(v) if isinstance(v, dict) else str(v) for v in row if v]
    return values


def all_rows(app):
    with app.engine.connect() as connection:
        return {
            table.name: sorted(map(tuple, connection.execute(select(table))), key=repr)
            for table in Base.metadata.sorted_tables
        }


def message_counts(app):
    with app.sessions() as session:
        query = select(Message.status, Message.channel, func.count()).group_by(
            Message.status, Message.channel
        )
        return sorted(session.execute(query).all())


def message_history(app):
    columns = (Message.step, Message.channel, Message.status, Message.attempts, Message.sent_at)
    with app.sessions() as session:
        return session.execute(select(*columns).order_by(Message.id)).all()


def patient(app, enrollment_id):
    with app.sessions() as session:
        return session.get_one(Enrollment, enrollment_id).patient


@pytest.fixture
def anastasia(app, clock, enroll, finish, texts):
    """Years ago: enrolled with every contact detail, replied, and her timeline ran out."""
    clock.set(YEARS_AGO)
    enrollment_id = enroll(
        "Anastasia", "+12025550143", email="anastasia@example.org", external_id="MRN-77123"
    )
    clock.advance(timedelta(hours=3))
    texts("+12025550143", "Anastasia here, the bandage itches, is that ok?")
    finish()
    clock.set(NOW)
    return enrollment_id


def test_an_old_finished_patient_loses_every_contact_detail_and_free_text(
    app, run, clock, enroll, cancel, anastasia
):
    clock.set(YEARS_AGO)
    benedikt = enroll("Benedikt", "+12025550144", email="benedikt@example.org")
    cancel(benedikt, "Benedikt moved to Boston, 2025550144")
    clock.set(NOW)
    secrets = ("Anastasia", "2025550143", "anastasia@", "MRN-77123", "Benedikt", "2025550144")
    found = {s for v in text_values(app) for s in secrets if s in v}
    assert found == set(secrets)  # the search below can find them
    assert purge(run) | {"cutoff": None} == {
        "dry_run": False,
        "older_than": "365d",
        "cutoff": None,
        "patients": 2,
        "enrollments": 2,
        "replies": 1,
        "events": 1,  # the cancellation's reason
        "batches": 1,
    }
    assert [v for v in text_values(app) if any(s in v for s in secrets)] == []
    ana = patient(app, anastasia)
    assert (ana.first_name, ana.phone, ana.email, ana.external_id) == ("(purged)", "purged",
                                                                       None, None)  # fmt: skip
    with app.sessions() as session:
        reply = session.scalars(select(Reply)).one()
        assert (reply.body, reply.from_number, reply.kind) == ("(purged)", "purged", "question")
        purged = session.scalars(select(Event).where(Event.kind == "purged")).all()
        assert sorted(e.enrollment_id for e in purged) == sorted([anastasia, benedikt])
        assert {e.actor for e in purged} == {"staff:test"}
        assert session.get_one(Enrollment, benedikt).status == "cancelled"


def test_message_rows_keep_what_reports_are_made_of(app, run, anastasia):
    counts, history = message_counts(app), message_history(app)
    purge(run)
    assert message_counts(app) == counts
    assert message_history(app) == history


def test_recent_patients_and_patients_still_in_care_are_untouched(
    app, run, clock, enroll, finish, anastasia
):
    clock.set(MONTHS_AGO)
    recent = enroll("Dolores", "+12025550145")
    finish()
    clock.set(YEARS_AGO)
    old_of_cal = enroll("Calixto", "+12025550146")
    finish()
    clock.set(NOW - timedelta(days=1))
    active_of_cal = enroll("Calixto", "+12025550146")  # the same patient, back for another
    clock.set(NOW)
    assert purge(run)["patients"] == 1  # Anastasia
    assert patient(app, recent).first_name == "Dolores"
    assert patient(app, old_of_cal).id == patient(app, active_of_cal).id
    assert patient(app, old_of_cal).phone == "+12025550146"
    with app.sessions() as session:
        kinds = session.scalars(
            select(Event.kind).where(Event.enrollment_id.in_([recent, old_of_cal]))
        ).all()
    assert "purged" not in kinds


def test_a_recent_reply_keeps_an_old_patient(app, run, clock, texts, anastasia):
    clock.set(NOW - timedelta(days=10))
    texts("+12025550143", "Thank you all again!")
    clock.set(NOW)
    assert purge(run)["patients"] == 0
    assert patient(app, anastasia).first_name == "Anastasia"


def test_a_dry_run_counts_and_writes_nothing(app, run, anastasia):
    before = all_rows(app)
    result = run("purge", "--older-than", "52w", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would purge 1 patient(s), 1 enrollment(s), 1 reply(ies)" in result.output
    assert "nothing was written" in result.output
    assert all_rows(app) == before


def test_it_works_in_batches_and_a_second_run_finds_nothing(app, run, clock, enroll, cancel):
    clock.set(YEARS_AGO)
    for n in range(5):
        cancel(enroll(f"Patient{n}", f"+1202555016{n}"))
    clock.set(NOW)
    first = purge(run, "--batch-size", "2")
    assert (first["patients"], first["enrollments"], first["batches"]) == (5, 5, 3)
    assert purge(run, "--batch-size", "2") | {"cutoff": None} == first | {
        "cutoff": None,
        "patients": 0,
        "enrollments": 0,
        "replies": 0,
        "events": 0,
        "batches": 0,
    }
    with app.sessions() as session:
        assert session.scalar(select(func.count()).where(Event.kind == "purged")) == 5
        assert set(session.scalars(select(Patient.first_name))) == {"(purged)"}


def test_a_dry_run_counts_every_batch(app, run, clock, enroll, cancel):
    clock.set(YEARS_AGO)
    for n in range(3):
        cancel(enroll(f"Patient{n}", f"+1202555017{n}"))
    clock.set(NOW)
    counted = purge(run, "--batch-size", "2", "--dry-run")
    assert (counted["patients"], counted["batches"], counted["dry_run"]) == (3, 2, True)


def test_an_opt_out_outlives_the_purge(app, run, clock, enroll, cancel, texts):
    """A number that said STOP must never be texted again, even if enrolled anew later."""
    clock.set(YEARS_AGO)
    cancel(enroll("Eulalia", "+12025550147"))
    texts("+12025550147", "STOP")
    clock.set(NOW)
    assert purge(run)["patients"] == 1
    with app.sessions() as session:
        assert session.scalars(select(Suppression.address)).all() == ["+12025550147"]


@pytest.mark.parametrize("span", ["7d", "29d", "4w"])
def test_it_refuses_to_purge_recent_data_without_force(run, span):
    result = run("purge", "--older-than", span)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --older-than: ")
    assert "--force" in result.stderr
    assert run("purge", "--older-than", span, "--force").exit_code == 0


@pytest.mark.parametrize("span", ["1y", "365", "soon"])
def test_a_span_that_is_no_duration_is_refused(run, span):
    result = run("purge", "--older-than", span)
    assert result.exit_code == 1
    assert "not a duration" in result.stderr
