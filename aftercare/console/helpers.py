"""Names every console template can use: patient-local and relative times, masks, labels."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import g

from aftercare.accounts.roles import may
from aftercare.cli.views import mask_email, mask_phone
from aftercare.console.context import aftercare_app
from aftercare.console.timefmt import day_number, patient_local, relative
from aftercare.planner import zone
from aftercare.statuses import StaffRole, WorkItemKind

KIND_LABELS = {
    WorkItemKind.URGENT_REPLY: "Urgent reply",
    WorkItemKind.REPLY: "Reply",
    WorkItemKind.FAILURE: "Delivery failed",
    WorkItemKind.OPT_OUT: "Opted out",
}


def now() -> datetime:
    return aftercare_app().clock.now()


def clinic_timezone() -> str:
    return aftercare_app().settings.clinic_timezone


def kind_label(kind: WorkItemKind) -> str:
    return KIND_LABELS[kind]


def template_names() -> dict[str, Any]:
    return {
        "local": patient_local,
        "relative": relative,
        "day_number": day_number,
        "mask_phone": mask_phone,
        "mask_email": mask_email,
        "kind_label": kind_label,
        # Viewers see no action forms (the actions would answer 403 anyway).
        "may_act": _may_act(),
        "parse_iso": parse_iso,
        "zone": zone,
    }


def _may_act() -> bool:
    account = g.get("staff")
    return account is not None and may(account.role, StaffRole.NURSE)


def parse_iso(value: str) -> datetime:
    """The views' ``...Z`` strings back to aware datetimes (for patient-local display)."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
