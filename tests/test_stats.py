"""``aftercare stats`` on SQLite and PostgreSQL: two patients' welcome messages go out through the
real dispatcher (one SMS fails for now and waits for its retry), patients reply, and three
dispatchers left their heartbeats."""

from __future__ import annotations

import json
import random
import uuid
from datetime import timedelta

import pytest

import aftercare.cli.stats  # noqa: F401  (registers the command)
from aftercare import inbox
from aftercare.channels.base import ChannelError
from aftercare.channels.memory import MemoryChannel
from aftercare.cli.stats import age
from aftercare.db import transaction
from aftercare.dispatch import Dispatcher
from aftercare.models import Worker

ANA, BEN = "+12025550143", "+12025550144"


@pytest.fixture
def busy_day(run, enroll_args, app, clock):
    """18:00Z: welcomes sent, except Ben's SMS (carrier said 30003); at 18:05Z it is overdue."""
    for name, phone in (("Ana", ANA), ("Ben", BEN)):
        args = enroll_args(first_name=name, phone=phone, email=f"{name.lower()}@example.org",
                           discharged_at="2026-11-23T10:00-06:00")  # fmt: skip
        assert run(*args).exit_code == 0
    clock.set(clock.now().replace(hour=18, minute=0))
    unreachable = ChannelError("handset unreachable", permanent=False, code="30003")
    sms = MemoryChannel("sms", lambda m: unreachable if m.to == BEN else None)
    channels = {"sms": sms, "email": MemoryChannel("email")}
    dispatcher = Dispatcher(app.sessions, channels, app.catalog, app.settings, clock, "w",
                            rng=random.Random(5))  # fmt: skip
    dispatcher.dispatch_due()
    dispatcher.close()
    with transaction(app.sessions) as session:
        session.add(Worker(id="host-a:11:stale", started_at=clock.now(), last_tick_at=clock.now()))
    clock.advance(timedelta(minutes=5))
    for sid, body in (("fever", "I have a fever"), ("shower", "Can I shower?")):
        inbox.receive(app, {"MessageSid": f"SM{sid}{uuid.uuid4().hex[:8]}", "From": ANA,
                            "Body": body})  # fmt: skip
    with transaction(app.sessions) as session:
        earlier = clock.now() - timedelta(hours=1)
        session.add(Worker(id="host-b:22:up", started_at=earlier, last_tick_at=clock.now()))
        session.add(Worker(id="host-c:33:down", started_at=earlier, last_tick_at=earlier,
                           stopped_at=earlier))  # fmt: skip


def stats_json(run):
    result = run("stats", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_stats_counts_messages_by_status_and_channel(run, busy_day):
    messages = stats_json(run)["messages"]
    counts = {(m["status"], m["channel"]): m["count"] for m in messages}
    assert counts[("sent", "sms")] == 1
    assert counts[("sent", "email")] == 2
    # Every step planned for both patients and not yet due is pending.
    assert counts[("pending", "sms")] > 1 and counts[("pending", "email")] > 1
    assert messages[0]["status"] == "pending"  # lifecycle order, not alphabetical


def test_stats_shows_the_overdue_backlog_and_provider_errors(run, busy_day):
    data = stats_json(run)
    assert data["backlog"]["due"] == 1  # Ben's SMS, waiting for its retry
    # Its retry came due 30 to 60 s after 18:00 (backoff with jitter); it is now 18:05.
    assert 240 <= data["backlog"]["oldest_wait_seconds"] <= 270
    assert data["provider_errors"] == [{"code": "30003", "count": 1}]


def test_stats_counts_replies_and_the_urgent_ones_nobody_handled(run, busy_day):
    replies = stats_json(run)["replies"]
    assert (replies["total"], replies["urgent_unhandled"]) == (2, 1)
    assert {"kind": "question", "urgent": True, "count": 1} in replies["by_kind"]
    reply_id = inbox_ids(run)[0]
    assert run("inbox", "done", str(reply_id)).exit_code == 0
    assert stats_json(run)["replies"]["urgent_unhandled"] == 0


def inbox_ids(run):
    return [r["id"] for r in json.loads(run("inbox", "--json").output) if r["urgent"]]


def test_stats_lists_dispatchers_running_stale_and_stopped(run, busy_day):
    workers = {w["id"]: w for w in stats_json(run)["dispatchers"]}
    assert {i: w["state"] for i, w in workers.items()} == {
        "host-b:22:up": "running",
        "host-a:11:stale": "stale",
        "host-c:33:down": "stopped",
    }
    assert workers["host-a:11:stale"]["last_tick_age_seconds"] == 300
    assert workers["host-c:33:down"]["stopped"] is True
    assert list(workers) == ["host-b:22:up", "host-a:11:stale", "host-c:33:down"]  # newest first


def test_stats_prints_a_table_for_people(run, busy_day):
    result = run("stats")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[lines.index("messages:") + 1].split() == ["STATUS", "EMAIL", "SMS", "TOTAL"]
    sent = next(line.split() for line in lines if line.startswith("sent "))
    assert sent == ["sent", "2", "1", "3"]
    assert any(line.startswith("total ") for line in lines)
    assert "backlog: 1 due and unsent; the oldest has waited 4m" in result.output
    assert "30003" in result.output
    assert "urgent and unhandled: 1" in result.output
    stale = next(line for line in lines if line.startswith("host-a:11:stale"))
    assert stale.split()[-4:] == ["5m", "0s", "ago", "stale"]


def test_stats_on_an_empty_database(run):
    result = run("stats")
    assert result.exit_code == 0, result.output
    assert "backlog: 0 due and unsent\n" in result.output
    assert "replies: 0; urgent and unhandled: 0" in result.output
    assert stats_json(run)["dispatchers"] == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (252, "4m 12s"), (3600, "1h 0m"), (2 * 86400 + 4 * 3600, "2d 4h")],
)
def test_ages_read_in_their_two_largest_units(seconds, text):
    assert age(seconds) == text
