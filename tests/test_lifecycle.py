"""What staff do after enrolling: cancel, pause, resume, reschedule. Sent history never moves."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from aftercare.app import App
from aftercare.cli import cli
from aftercare.db import transaction
from aftercare.models import Enrollment, Event, Message
from tests.conftest import CliRun

EnrollArgs = Callable[..., list[str]]


@pytest.fixture
def enrolled(run: CliRun, enroll_args: EnrollArgs) -> int:
    """The id of one active enrollment (kyphoplasty, sms and email)."""
    result = run(*enroll_args(), "--json")
    assert result.exit_code == 0, result.output
    enrollment_id: int = json.loads(result.stdout)["id"]
    return enrollment_id


def statuses(app: App, enrollment_id: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    with app.sessions() as session:
        for status in session.scalars(
            select(Message.status).where(Message.enrollment_id == enrollment_id)
        ):
            counts[status] = counts.get(status, 0) + 1
    return counts


def enrollment_status(app: App, enrollment_id: int) -> tuple[str, str | None]:
    with app.sessions() as session:
        enrollment = session.get_one(Enrollment, enrollment_id)
        return enrollment.status, enrollment.status_reason


def events(app: App, enrollment_id: int) -> list[Event]:
    with app.sessions() as session:
        query = select(Event).where(Event.enrollment_id == enrollment_id).order_by(Event.id)
        return list(session.scalars(query))


def messages(app: App, enrollment_id: int) -> dict[tuple[str, int, str], Message]:
    with app.sessions() as session:
        rows = session.scalars(select(Message).where(Message.enrollment_id == enrollment_id))
        return {(m.step, m.occurrence, m.channel): m for m in rows}


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_needs_a_reason(run: CliRun, enrolled: int) -> None:
    result = run("cancel", str(enrolled))

    assert result.exit_code == 1
    assert result.stderr == "error: --reason: is required (why, for the audit trail)\n"


def test_cancel_refuses_a_blank_reason(run: CliRun, app: App, enrolled: int) -> None:
    result = run("cancel", str(enrolled), "--reason", "   ")

    assert result.exit_code == 1
    assert result.stderr == "error: --reason: is empty\n"
    assert enrollment_status(app, enrolled) == ("active", None)


def test_cancel_cancels_every_unsent_message_and_records_who_and_why(
    run: CliRun, app: App, enrolled: int
) -> None:
    total = sum(statuses(app, enrolled).values())

    result = run("cancel", str(enrolled), "--reason", "readmitted  for surgery")

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"cancelled enrollment {enrolled}: {total} message(s) will not be sent\n"
    )
    assert statuses(app, enrolled) == {"cancelled": total}
    assert enrollment_status(app, enrolled) == ("cancelled", "readmitted for surgery")
    last = events(app, enrolled)[-1]
    assert (last.kind, last.actor, last.reason) == (
        "cancelled",
        "staff:test",
        "readmitted for surgery",
    )
    assert last.detail == {"messages": total}


def test_cancel_leaves_sent_messages_as_they_are(run: CliRun, app: App, enrolled: int) -> None:
    mark_sent(app, enrolled, "welcome-home", "sms")

    run("cancel", str(enrolled), "--reason", "moved away")

    assert messages(app, enrolled)["welcome-home", 0, "sms"].status == "sent"


def test_cancelling_a_cancelled_enrollment_fails(run: CliRun, app: App, enrolled: int) -> None:
    run("cancel", str(enrolled), "--reason", "moved away")
    before = len(events(app, enrolled))

    result = run("cancel", str(enrolled), "--reason", "again")

    assert result.exit_code == 1
    assert result.stderr == f"error: id: cannot cancel enrollment {enrolled}: it is cancelled\n"
    assert len(events(app, enrolled)) == before


def test_the_audit_trail_names_the_staff_member_given_with_as(
    app: App, enrolled: int, run: CliRun
) -> None:
    # The test App fixes the actor; a real run takes it from --as (or the login name).
    database = ["--database-url", app.settings.database_url, "--as", "nurse.kim"]
    command = ["cancel", str(enrolled), "--reason", "moved away"]

    result = CliRunner().invoke(cli, [*database, *command], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert events(app, enrolled)[-1].actor == "staff:nurse.kim"


# --- pause and resume -------------------------------------------------------------------------


def test_pause_holds_every_pending_message(run: CliRun, app: App, enrolled: int) -> None:
    total = sum(statuses(app, enrolled).values())

    result = run("pause", str(enrolled), "--reason", "readmitted")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"paused enrollment {enrolled}: {total} message(s) held\n"
    assert statuses(app, enrolled) == {"paused": total}
    assert enrollment_status(app, enrolled) == ("paused", "readmitted")
    last = events(app, enrolled)[-1]
    assert (last.kind, last.actor, last.reason) == ("paused", "staff:test", "readmitted")


def test_resume_makes_held_messages_pending_again(run: CliRun, app: App, enrolled: int) -> None:
    total = sum(statuses(app, enrolled).values())
    run("pause", str(enrolled))

    result = run("resume", str(enrolled), "--reason", "back home")

    assert result.exit_code == 0, result.output
    assert result.stdout == f"resumed enrollment {enrolled}: {total} message(s) pending again\n"
    assert statuses(app, enrolled) == {"pending": total}
    assert enrollment_status(app, enrolled) == ("active", "back home")
    assert [e.kind for e in events(app, enrolled)][-2:] == ["paused", "resumed"]


def test_pause_and_resume_leave_sent_messages_alone(run: CliRun, app: App, enrolled: int) -> None:
    mark_sent(app, enrolled, "welcome-home", "sms")

    run("pause", str(enrolled))
    run("resume", str(enrolled))

    assert messages(app, enrolled)["welcome-home", 0, "sms"].status == "sent"


def test_resuming_an_enrollment_that_is_not_paused_fails(
    run: CliRun, app: App, enrolled: int
) -> None:
    result = run("resume", str(enrolled))

    assert result.exit_code == 1
    assert result.stderr == f"error: id: enrollment {enrolled} is active, not paused\n"
    assert set(statuses(app, enrolled)) == {"pending"}


def test_pausing_a_paused_enrollment_fails(run: CliRun, enrolled: int) -> None:
    run("pause", str(enrolled))

    result = run("pause", str(enrolled))

    assert result.exit_code == 1
    assert result.stderr == f"error: id: enrollment {enrolled} is already paused\n"


def test_a_cancelled_enrollment_cannot_be_paused_or_resumed(
    run: CliRun, app: App, enrolled: int
) -> None:
    run("cancel", str(enrolled), "--reason", "moved away")

    paused = run("pause", str(enrolled))
    resumed = run("resume", str(enrolled))

    assert (paused.exit_code, resumed.exit_code) == (1, 1)
    assert set(statuses(app, enrolled)) == {"cancelled"}


def test_a_paused_enrollment_can_be_cancelled(run: CliRun, app: App, enrolled: int) -> None:
    run("pause", str(enrolled))

    result = run("cancel", str(enrolled), "--reason", "moved away")

    assert result.exit_code == 0, result.output
    assert set(statuses(app, enrolled)) == {"cancelled"}


# --- reschedule -------------------------------------------------------------------------------


def mark_sent(app: App, enrollment_id: int, step: str, channel: str) -> None:
    """What dispatch records after a send, written straight into the outbox."""
    with transaction(app.sessions) as session:
        session.execute(
            update(Message)
            .where(
                Message.enrollment_id == enrollment_id,
                Message.step == step,
                Message.channel == channel,
            )
            .values(status="sent", sent_at=app.clock.now(), provider_id="SM123", attempts=1)
        )


def test_reschedule_moves_unsent_messages_and_keeps_sent_ones(
    run: CliRun, app: App, enrolled: int
) -> None:
    mark_sent(app, enrolled, "welcome-home", "sms")
    before = messages(app, enrolled)

    # Discharge was really a day later than staff first typed.
    result = run("reschedule", str(enrolled), "--discharged-at", "2026-11-24T10:30-06:00")

    assert result.exit_code == 0, result.output
    after = messages(app, enrolled)
    sent = after["welcome-home", 0, "sms"]
    assert (sent.status, sent.due_at) == ("sent", before["welcome-home", 0, "sms"].due_at)
    assert after["welcome-home", 0, "email"].due_at == datetime(2026, 11, 24, 18, 30, tzinfo=UTC)
    pending = [key for key, m in after.items() if m.status == "pending"]
    assert len(pending) == len(before) - 1
    for key in pending:
        assert after[key].due_at - before[key].due_at == timedelta(days=1), key
        assert after[key].next_attempt_at == after[key].due_at
    assert result.stdout == (
        f"rescheduled enrollment {enrolled}: {len(pending)} moved, 0 cancelled, 0 added, 1 kept\n"
    )


def test_reschedule_records_the_old_and_new_discharge_time(
    run: CliRun, app: App, enrolled: int
) -> None:
    run(
        "reschedule", str(enrolled), "--discharged-at", "2026-11-24T10:30-06:00", "--reason", "typo"
    )

    last = events(app, enrolled)[-1]
    shown = json.loads(run("patients", "show", str(enrolled), "--json").stdout)

    assert (last.kind, last.actor, last.reason) == ("rescheduled", "staff:test", "typo")
    detail: dict[str, Any] = last.detail or {}
    assert detail["from"].startswith("2026-11-23T16:30")
    assert detail["to"].startswith("2026-11-24T16:30")
    assert shown["discharged_at"] == "2026-11-24T16:30:00Z"


def test_rescheduling_a_paused_enrollment_keeps_its_messages_held(
    run: CliRun, app: App, enrolled: int
) -> None:
    run("pause", str(enrolled))

    result = run("reschedule", str(enrolled), "--discharged-at", "2026-11-24T10:30-06:00")

    assert result.exit_code == 0, result.output
    assert set(statuses(app, enrolled)) == {"paused"}
    assert enrollment_status(app, enrolled)[0] == "paused"


def test_reschedule_refuses_a_time_without_an_offset(run: CliRun, app: App, enrolled: int) -> None:
    before = messages(app, enrolled)

    result = run("reschedule", str(enrolled), "--discharged-at", "2026-11-24T10:30")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: --discharged-at: ")
    assert {k: m.due_at for k, m in messages(app, enrolled).items()} == {
        k: m.due_at for k, m in before.items()
    }


def test_a_cancelled_enrollment_cannot_be_rescheduled(run: CliRun, enrolled: int) -> None:
    run("cancel", str(enrolled), "--reason", "moved away")

    result = run("reschedule", str(enrolled), "--discharged-at", "2026-11-24T10:30-06:00")

    assert result.exit_code == 1
    assert "cannot reschedule" in result.stderr


def test_rescheduling_onto_a_finished_enrollments_discharge_time_fails_clearly(
    run: CliRun, app: App, enroll_args: EnrollArgs, enrolled: int
) -> None:
    # One open enrollment per procedure: the twin is one that was cancelled.
    assert run("cancel", str(enrolled), "--reason", "entered with the wrong time").exit_code == 0
    corrected = enroll_args(discharged_at="2026-11-24T10:30-06:00")
    other = json.loads(run(*corrected, "--json").stdout)["id"]
    before = messages(app, other)

    result = run("reschedule", str(other), "--discharged-at", "2026-11-23T10:30-06:00")

    assert result.exit_code == 1
    assert result.stderr.startswith("error: --discharged-at: ")
    assert f"enrollment {enrolled}" in result.stderr
    assert result.stderr.count("\n") == 1
    assert {k: m.due_at for k, m in messages(app, other).items()} == {
        k: m.due_at for k, m in before.items()
    }


# --- ids that name nothing --------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["cancel", "99", "--reason", "moved away"],
        ["pause", "99"],
        ["resume", "99"],
        ["reschedule", "99", "--discharged-at", "2026-11-24T10:30-06:00"],
        ["patients", "show", "99"],
    ],
)
def test_an_unknown_id_fails_with_a_clear_message(run: CliRun, command: list[str]) -> None:
    result = run(*command)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: id: no enrollment 99\n"


def test_an_id_that_is_not_a_number_is_a_usage_error(run: CliRun) -> None:
    result = run("pause", "abc")

    assert result.exit_code == 2
