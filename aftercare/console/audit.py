"""PROTOTYPE until H13a's audit helpers land."""

from __future__ import annotations

from typing import Any

from aftercare.console.deps import actor, aftercare, now
from aftercare.db import transaction
from aftercare.lifecycle import record


def audit_action(
    kind: str, enrollment_id: int | None = None, detail: dict[str, Any] | None = None
) -> None:
    with transaction(aftercare().sessions) as session:
        record(session, kind, actor(), now(), enrollment_id, detail=detail)


def audit_view(enrollment_id: int) -> None:
    audit_action("record_viewed", enrollment_id)
