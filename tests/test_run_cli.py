"""`aftercare run --once` through the CLI: channels with missing settings wait, named."""

from __future__ import annotations

import json

from sqlalchemy import select

from aftercare.models import Message


def _statuses(app, channel: str) -> set[str]:
    with app.sessions() as session:
        return set(
            session.scalars(
                select(Message.status).where(
                    Message.channel == channel, Message.step == "welcome-home"
                )
            )
        )


def test_without_any_channel_settings_run_refuses_with_the_missing_names(run, enroll_args):
    run(*enroll_args(**{"discharged-at": "2026-11-23T08:00-06:00"}))
    result = run("run", "--once")
    assert result.exit_code == 1
    assert "TWILIO_ACCOUNT_SID" in result.stderr and "AFTERCARE_SMTP_URL" in result.stderr


def test_a_channel_without_settings_waits_and_is_named_at_start(run, app, enroll_args, smtp_server):
    app.settings = app.settings.with_overrides(
        smtp_url=smtp_server.url, email_from="care@example.org"
    )
    run(*enroll_args(**{"discharged-at": "2026-11-23T08:00-06:00"}))  # welcome due at 16:00Z
    result = run("run", "--once")
    assert result.exit_code == 0, result.stderr
    assert "sms channel is off (missing TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN" in result.stderr
    assert "9 pending sms message(s) will wait" in result.stderr
    assert [m.message["Subject"] for m in smtp_server.messages] == [
        "Your care at home after your procedure"
    ]
    assert _statuses(app, "sms") == {"pending"}
    assert _statuses(app, "email") == {"sent"}


def test_a_pass_with_once_is_listed_as_a_stopped_dispatcher(run, app, enroll_args, smtp_server):
    app.settings = app.settings.with_overrides(
        smtp_url=smtp_server.url, email_from="care@example.org"
    )
    run(*enroll_args(**{"discharged-at": "2026-11-23T08:00-06:00"}))
    assert run("run", "--once").exit_code == 0
    (dispatcher,) = json.loads(run("stats", "--json").stdout)["dispatchers"]
    assert dispatcher["stopped"] is True
