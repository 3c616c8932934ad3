"""``aftercare preview`` and the console's enroll preview are one function: the same messages,
at the same patient-local times, with the words the dispatcher would send."""

from __future__ import annotations

import json
from datetime import datetime

from aftercare.preview import preview
from aftercare.render import Recipient


def test_the_cli_preview_shows_what_the_preview_function_plans(run, app):
    result = run(
        "preview", "kyphoplasty", "--discharged-at", "2026-11-23T20:45-08:00",
        "--tz", "America/Los_Angeles", "--language", "es", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    recipient = Recipient(
        "Alex", "America/Los_Angeles", "es", datetime.fromisoformat("2026-11-23T20:45-08:00")
    )
    timeline = app.catalog.get("kyphoplasty")
    planned = preview(timeline, recipient, ("sms", "email"), app.clinic, app.settings.quiet_hours)
    assert [(r["step"], r["channel"], r["text"]) for r in shown] == [
        (m.planned.step, m.planned.channel, m.text) for m in planned
    ]
    assert shown[0]["local_due"].endswith("PST")
    assert "Spine Care Clinic" in shown[0]["text"] and shown[1]["subject"]
