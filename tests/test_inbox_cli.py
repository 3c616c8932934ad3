"""``aftercare inbox`` (what staff must read, urgent first), ``inbox done`` and ``aftercare audit``
(the event log as JSON or a table), on SQLite and PostgreSQL. Replies come in through
``inbox.receive``, the webhook's unit of work."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from aftercare import inbox
from aftercare.channels.memory import MemoryChannel
from aftercare.cli.audit import events as audit_events
from aftercare.cli.views import iso
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher
from aftercare.models import Event

ANA = "+12025550143"
STRANGER = "+13125550199"


@pytest.fixture
def ana(run, enroll_args, app, clock):
    """Ana, enrolled; her welcome SMS went out. Returns her enrollment id."""
    enrolled = json.loads(run(*enroll_args(), "--json").output)
    clock.set(clock.now().replace(hour=19))
    channels = {"sms": MemoryChannel("sms"), "email": MemoryChannel("email")}
    dispatcher = Dispatcher(app.sessions, channels, app.catalog, app.settings, clock, "w",
                            rng=random.Random(1))  # fmt: skip
    dispatcher.dispatch_due()
    dispatcher.close()
    return enrolled["id"]


@pytest.fixture
def texts(app, clock):
    """Function: a patient texts ``body`` (a minute after the previous text); returns the answer."""

    def send(body, number=ANA):
        clock.advance(timedelta(minutes=1))
        form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": body}
        return inbox.receive(app, form)

    return send


def inbox_json(run, *args):
    result = run("inbox", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_the_inbox_lists_urgent_replies_first_then_the_newest(run, ana, texts):
    texts("Can I shower?")
    texts("I have a fever")
    texts("STOP")
    texts("START")
    texts("HELP")
    texts("3")  # a routine pain score: nothing for staff
    texts("9")  # an urgent one
    texts("when can I drive?")
    rows = inbox_json(run)
    assert [(r["body"], r["urgent"]) for r in rows] == [
        ("9", True),
        ("I have a fever", True),
        ("when can I drive?", False),
        ("Can I shower?", False),
    ]


def test_each_reply_has_the_patient_the_message_it_answers_and_why_it_is_urgent(
    run, ana, texts, clock
):
    texts("the site is red")
    (row,) = inbox_json(run)
    assert row["patient"] == {
        "id": 1, "enrollment_id": ana, "first_name": "Ana", "phone": "+1******0143"
    }  # fmt: skip
    assert row["in_reply_to"]["step"] == "welcome-home"
    assert row["in_reply_to"]["occurrence"] == 0
    assert row["received_at"] == iso(clock.now())
    assert row["received_at"].endswith("Z")
    assert (row["urgent"], row["urgent_reason"], row["kind"]) == (
        True, "redness at the site", "question"
    )  # fmt: skip
    assert row["handled_at"] is None


def test_a_reply_from_an_unknown_number_shows_it_masked(run, texts):
    texts("is this the clinic?", number=STRANGER)
    (row,) = inbox_json(run)
    assert row["patient"] == {
        "id": None, "enrollment_id": None, "first_name": None, "phone": "+1******0199"
    }  # fmt: skip
    assert row["in_reply_to"] is None
    assert "unknown +1******0199" in run("inbox").output


def test_sql_markup_and_control_characters_are_shown_safely(run, ana, texts):
    body = "x'); DROP TABLE reply;-- <b>bold</b> & \x1b[2J\u202eevil"
    texts(body)
    assert inbox_json(run)[0]["body"] == body  # JSON escapes as JSON does
    raw = run("inbox", "--json").output
    assert "\\u001b[2J" in raw
    table = run("inbox").output
    assert "x'); DROP TABLE reply;-- <b>bold</b> & \\x1b[2J\\u202eevil" in table
    assert "\x1b" not in table and "\u202e" not in table


def test_done_takes_a_reply_out_of_the_inbox_and_records_who(run, app, ana, texts):
    texts("Can I shower?")
    texts("Can I drive?")
    first, second = sorted(r["id"] for r in inbox_json(run))
    result = run("inbox", "done", str(first))
    assert result.exit_code == 0 and "marked as handled" in result.output
    assert [r["id"] for r in inbox_json(run)] == [second]
    everything = {r["id"]: r for r in inbox_json(run, "--all")}
    assert everything[first]["handled_by"] == "staff:test"
    assert everything[first]["handled_at"] is not None
    with app.sessions() as session:
        (event,) = session.scalars(select(Event).where(Event.kind == "reply_handled")).all()
    assert (event.actor, event.detail, event.enrollment_id) == (
        "staff:test", {"reply_id": first}, ana
    )  # fmt: skip
    assert "already handled" in run("inbox", "done", str(first)).output


def test_done_keeps_the_note_in_the_event_and_refuses_an_empty_one(run, app, ana, texts):
    texts("Can I shower?")
    (reply,) = inbox_json(run)
    empty = run("inbox", "done", str(reply["id"]), "--note", "  ")
    assert empty.exit_code == 1 and "--note: is empty" in empty.output
    assert run("inbox", "done", str(reply["id"]), "--note", "called  her").exit_code == 0
    with app.sessions() as session:
        (event,) = session.scalars(select(Event).where(Event.kind == "reply_handled")).all()
    assert event.reason == "called her"


def test_done_with_an_unknown_id_fails(run):
    result = run("inbox", "done", "999")
    assert result.exit_code == 1
    assert "no reply 999" in result.output


def test_limit_keeps_the_first_n(run, ana, texts):
    for n in range(5):
        texts(f"question {n}")
    assert [r["body"] for r in inbox_json(run, "--limit", "2")] == ["question 4", "question 3"]


def test_an_empty_inbox_prints_an_empty_list_or_none(run):
    assert inbox_json(run) == []
    assert "(none)" in run("inbox").output


def test_patients_show_lists_pain_scores_and_replies(run, ana, texts, clock):
    texts("6")
    texts("dolor 8")
    texts("Can I shower?")
    shown = json.loads(run("patients", "show", str(ana), "--json").output)
    assert [p["score"] for p in shown["pain_scores"]] == [6, 8]
    assert [r["kind"] for r in shown["replies"]] == ["pain", "pain", "question"]
    assert shown["replies"][1]["urgent_reason"] == "pain 8/10"
    table = run("patients", "show", str(ana)).output
    assert "pain scores: 6 (" in table and "Can I shower?" in table


# --- audit ------------------------------------------------------------------------------------


def audit_json(run, *args):
    result = run("audit", "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_audit_exports_the_events_of_a_period_as_json(run, ana, texts, clock):
    texts("STOP")
    rows = audit_json(run, "--since", "7d")
    assert set(rows[0]) == {
        "id", "at", "kind", "actor", "enrollment_id", "message_id", "reason", "detail"
    }  # fmt: skip
    kinds = [r["kind"] for r in rows]
    assert kinds[:2] == ["enrolled", "planned"]
    assert {"sent", "opted_out", "suppressed", "replied"} <= set(kinds)
    assert [r["at"] for r in rows] == sorted(r["at"] for r in rows)
    opted_out = next(r for r in rows if r["kind"] == "opted_out")
    assert (opted_out["actor"], opted_out["enrollment_id"]) == ("patient", ana)
    assert all(r["at"].endswith("Z") for r in rows)


def test_audit_selects_by_time_and_enrollment(run, ana, texts, clock, enroll_args):
    other = json.loads(run(*enroll_args(first_name="Bea", phone="+12025550111"), "--json").output)
    clock.advance(timedelta(days=2))
    texts("Can I shower?")
    recent = audit_json(run, "--since", "1d")
    assert [r["kind"] for r in recent] == ["replied", "alert_opened"]  # a question: on the worklist
    window = audit_json(
        run, "--since", "2026-11-23", "--until", iso(clock.now() - timedelta(days=1))
    )
    assert "replied" not in {r["kind"] for r in window} and window
    only_bea = audit_json(run, "--since", "30d", "--enrollment", str(other["id"]))
    assert {r["enrollment_id"] for r in only_bea} == {other["id"]}
    assert audit_json(run, "--since", "1h", "--enrollment", str(other["id"])) == []


def test_audit_reads_in_batches_without_losing_or_repeating_rows(app, ana, texts, clock):
    for n in range(7):
        texts(f"question {n}")  # events at distinct times, several sharing one
    since = clock.now() - timedelta(days=30)
    everything = list(audit_events(app.sessions, since))
    paged = list(audit_events(app.sessions, since, batch=2))
    assert paged == everything
    assert len({r["id"] for r in paged}) == len(paged) > 7


def test_audit_prints_a_table_without_json(run, ana):
    output = run("audit", "--since", "7d").output
    lines = output.splitlines()
    assert lines[0].split()[:4] == ["ID", "AT", "(UTC)", "KIND"]
    assert "enrolled" in output and output.rstrip().endswith("event(s)")


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "2026-11-23T10:00"])
def test_audit_refuses_a_time_it_cannot_read(run, since):
    result = run("audit", "--since", since)
    assert result.exit_code == 1
    assert "--since" in result.output


def test_audit_refuses_an_empty_period(run):
    result = run("audit", "--since", "1d", "--until", "2d")
    assert result.exit_code == 1 and "--until" in result.output


def test_audit_needs_since(run):
    assert run("audit").exit_code == 2


def test_events_written_in_one_transaction_keep_their_order(app, clock, ana):
    # Several events share one timestamp (planning writes many at once): ties go by id.
    with transaction(app.sessions) as session:
        ids = session.scalars(select(Event.id).order_by(Event.at, Event.id)).all()
    exported = [r["id"] for r in audit_events(app.sessions, clock.now() - timedelta(days=1))]
    assert exported == list(ids)
