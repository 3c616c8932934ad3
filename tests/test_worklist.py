"""The worklist's items (what needs a person) and the roster, on SQLite and PostgreSQL.

Replies come in through ``inbox.receive`` (the webhook's unit of work); failures through the real
dispatcher with a channel that answers like Twilio does for a bad number; the worklist is read
with the store functions the console's pages call."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from aftercare import inbox
from aftercare.channels.base import ChannelError
from aftercare.channels.memory import MemoryChannel
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher
from aftercare.models import Event, Reply
from aftercare.statuses import WorkItemKind
from aftercare.store import replies, worklist
from aftercare.store.roster import RosterFilter, roster_all, roster_page

ANA, BO, CY = "+12025550143", "+12025550144", "+12025550145"


@pytest.fixture
def patients(run, enroll_args, app, clock):
    """Ana, Bo and Cy enrolled; Bo's number is invalid, so his welcome text failed (21211)."""
    ids = {}
    for name, phone in (("Ana", ANA), ("Bo", BO), ("Cy", CY)):
        result = run(*enroll_args(first_name=name, phone=phone, email=None), "--json")
        ids[name] = json.loads(result.output)["id"]
    clock.set(clock.now().replace(hour=19))

    def twilio_like(message):
        if message.to == BO:
            return ChannelError("invalid 'To' number", permanent=True, code="21211")
        return None

    channels = {"sms": MemoryChannel("sms", twilio_like), "email": MemoryChannel("email")}
    dispatcher = Dispatcher(app.sessions, channels, app.catalog, app.settings, clock, "w",
                            rng=random.Random(1))  # fmt: skip
    dispatcher.dispatch_due()
    dispatcher.close()
    return ids


@pytest.fixture
def texts(app, clock):
    def send(body, number=ANA):
        clock.advance(timedelta(minutes=1))
        inbox.receive(app, {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": body})

    return send


def items(app):
    with app.sessions() as session:
        return worklist.open_items(session)


def test_urgent_replies_come_first_then_everything_else_oldest_first(app, patients, texts):
    texts("Can I shower?")
    texts("STOP", number=CY)
    texts("I have a fever and the site is red")
    found = items(app)
    assert [(i.kind, i.first_name) for i in found] == [
        (WorkItemKind.URGENT_REPLY, "Ana"),
        (WorkItemKind.FAILURE, "Bo"),  # failed at 19:00, before any reply
        (WorkItemKind.REPLY, "Ana"),
        (WorkItemKind.OPT_OUT, "Cy"),
    ]
    urgent, failure, question, opt_out = found
    assert urgent.body == "I have a fever and the site is red" and "fever" in urgent.why
    assert urgent.message is not None and urgent.message.step == "welcome-home"
    assert failure.why == "invalid phone number (21211)" and failure.message.channel == "sms"
    assert question.why == "a question for staff" and question.body == "Can I shower?"
    assert opt_out.why == "no more texts: patient replied STOP"


def test_a_high_pain_score_is_urgent_and_a_routine_one_is_not_listed(app, patients, texts):
    texts("3")
    texts("8")
    (item,) = [i for i in items(app) if i.first_name == "Ana"]
    assert item.kind == WorkItemKind.URGENT_REPLY and item.timezone == "America/Chicago"
    assert item.why.startswith("pain 8")


def test_failures_of_one_patient_on_one_channel_are_one_item_closed_together(app, patients, clock):
    channels = {
        "sms": MemoryChannel("sms", lambda m: ChannelError("bad", permanent=True, code="21211")),
        "email": MemoryChannel("email"),
    }
    dispatcher = Dispatcher(app.sessions, channels, app.catalog, app.settings, clock, "w",
                            rng=random.Random(1))  # fmt: skip
    # The welcome text fails, then the bandage text two days later (one text a day per number).
    for day in (timedelta(hours=3), timedelta(days=2)):
        clock.advance(day)
        dispatcher.dispatch_due()
    dispatcher.close()
    bo = next(i for i in items(app) if i.first_name == "Bo")
    assert bo.count == 2
    with transaction(app.sessions) as session:
        assert worklist.mark_handled(
            session, WorkItemKind.FAILURE, bo.ref_id, "staff:7:rn@example.org", clock.now(),
            "called Bo, number corrected",
        )  # fmt: skip
    assert all(i.first_name != "Bo" for i in items(app))
    with app.sessions() as session:
        event = session.scalars(select(Event).where(Event.kind == "item_handled")).one()
    assert (event.actor, event.reason, event.enrollment_id) == (
        "staff:7:rn@example.org",
        "called Bo, number corrected",
        patients["Bo"],
    )


def test_handling_twice_changes_nothing_the_second_time(app, patients, texts, clock):
    texts("STOP", number=CY)
    (opt_out,) = [i for i in items(app) if i.kind == WorkItemKind.OPT_OUT]
    for expected in (True, False):
        with transaction(app.sessions) as session:
            done = worklist.mark_handled(
                session, WorkItemKind.OPT_OUT, opt_out.ref_id, "staff:1:a@b.org", clock.now()
            )
        assert done is expected
    assert [i.kind for i in items(app)] == [WorkItemKind.FAILURE]


def test_a_reply_handled_with_a_note_records_who_when_and_the_note(app, patients, texts, clock):
    texts("My legs are numb")
    (reply_item,) = [i for i in items(app) if i.kind == WorkItemKind.URGENT_REPLY]
    with transaction(app.sessions) as session:
        replies.mark_handled(
            session, reply_item.ref_id, "staff:2:rn@x.org", clock.now(), "sent to ER"
        )
    with app.sessions() as session:
        reply = session.get(Reply, reply_item.ref_id)
        event = session.scalars(select(Event).where(Event.kind == "reply_handled")).one()
    assert (reply.handled_by, reply.handled_at) == ("staff:2:rn@x.org", clock.now())
    assert event.reason == "sent to ER"
    with app.sessions() as session:
        assert worklist.urgent_count(session) == 0


def test_the_roster_finds_a_patient_by_name_external_id_or_last_four_digits(
    app, run, enroll_args, patients
):
    run(*enroll_args(first_name="Dee", phone="+12025559876", external_id="MRN-77"))
    with app.sessions() as session:
        for term in ("dee", "MRN-77", "9876"):
            page = roster_page(session, RosterFilter(search=term))
            assert [r.first_name for r in page.rows] == ["Dee"], term
        assert roster_page(session, RosterFilter(search="%")).total == 0


def test_the_roster_shows_problems_and_filters_on_them(app, patients, texts):
    texts("9")
    with app.sessions() as session:
        page = roster_page(session, RosterFilter(needs_attention=True))
        rows = {r.first_name: r for r in page.rows}
        assert set(rows) == {"Ana", "Bo"}
        assert rows["Ana"].problems == ["urgent reply"] and rows["Ana"].last_pain == 9
        assert rows["Bo"].problems == ["1 failed text"]
        assert rows["Bo"].next_due is not None  # his later texts are still planned
        assert roster_page(session, RosterFilter(status="paused")).total == 0


def test_the_whole_roster_comes_in_batches_newest_first(app, patients):
    with app.sessions() as session:
        everyone = list(roster_all(session, RosterFilter(), batch=2))
    assert [r.first_name for r in everyone] == ["Cy", "Bo", "Ana"]
