"""Console actions and record views in the event log the CLI writes, with the account as actor.

HIPAA's audit controls (45 CFR 164.312(b)) ask who looked at whose record, not only who
changed it: every view of a patient's record is written here too.
"""

from __future__ import annotations

from typing import Any

from flask import request

from aftercare.console.context import actor, aftercare_app
from aftercare.db import transaction
from aftercare.statuses import EventKind
from aftercare.store.events import record


def audit_view(page: str, enrollment_id: int | None = None, **detail: Any) -> None:
    """Records that the signed-in account looked at ``page`` (of one enrollment, if given).
    Pass no search terms or other patient data in ``detail``."""
    audit_action(EventKind.VIEWED, enrollment_id=enrollment_id, page=page, **detail)


def audit_action(
    kind: EventKind,
    enrollment_id: int | None = None,
    message_id: int | None = None,
    reason: str | None = None,
    **detail: Any,
) -> None:
    """Records ``kind`` done by the signed-in account, from the request's address."""
    app = aftercare_app()
    with transaction(app.sessions) as session:
        record(
            session,
            kind,
            actor(),
            app.clock.now(),
            enrollment_id=enrollment_id,
            message_id=message_id,
            reason=reason,
            detail={"address": request.remote_addr, **detail},
        )
