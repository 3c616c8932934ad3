"""What staff do to an enrollment after it exists: cancel, pause, resume, reschedule.

Each change touches only messages that have not gone out (pending or paused); sent history is
never rewritten. Each writes one event with the actor and the reason.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from aftercare.config import Settings
from aftercare.errors import AftercareError, InputError, NotFoundError
from aftercare.models import Enrollment, Message
from aftercare.planner import plan
from aftercare.schedules.load import Catalog
from aftercare.statuses import EnrollmentStatus, EventKind, MessageStatus
from aftercare.store.enrollments import message_row
from aftercare.store.events import record


def get_enrollment(session: Session, enrollment_id: int) -> Enrollment:
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is None:
        raise NotFoundError(f"id: no enrollment {enrollment_id}")
    return enrollment


def cancel(session: Session, enrollment_id: int, reason: str, actor: str, now: datetime) -> int:
    """Cancel every unsent message; returns how many."""
    enrollment = _changeable(session, enrollment_id, "cancel")
    count = _move(
        session,
        enrollment_id,
        (MessageStatus.PENDING, MessageStatus.PAUSED),
        MessageStatus.CANCELLED,
        now,
    )
    _set_status(enrollment, EnrollmentStatus.CANCELLED, reason, now)
    record(
        session,
        EventKind.CANCELLED,
        actor,
        now,
        enrollment_id,
        reason=reason,
        detail={"messages": count},
    )
    return count


def pause(
    session: Session, enrollment_id: int, reason: str | None, actor: str, now: datetime
) -> int:
    enrollment = _changeable(session, enrollment_id, "pause")
    if enrollment.status == EnrollmentStatus.PAUSED:
        raise AftercareError(f"id: enrollment {enrollment_id} is already paused")
    count = _move(session, enrollment_id, (MessageStatus.PENDING,), MessageStatus.PAUSED, now)
    _set_status(enrollment, EnrollmentStatus.PAUSED, reason, now)
    record(
        session,
        EventKind.PAUSED,
        actor,
        now,
        enrollment_id,
        reason=reason,
        detail={"messages": count},
    )
    return count


def resume(
    session: Session, enrollment_id: int, reason: str | None, actor: str, now: datetime
) -> int:
    """Paused messages become pending again; any whose time has passed are expired by dispatch."""
    enrollment = get_enrollment(session, enrollment_id)
    if enrollment.status != EnrollmentStatus.PAUSED:
        raise AftercareError(f"id: enrollment {enrollment_id} is {enrollment.status}, not paused")
    count = _move(session, enrollment_id, (MessageStatus.PAUSED,), MessageStatus.PENDING, now)
    _set_status(enrollment, EnrollmentStatus.ACTIVE, reason, now)
    record(
        session,
        EventKind.RESUMED,
        actor,
        now,
        enrollment_id,
        reason=reason,
        detail={"messages": count},
    )
    return count


def reschedule(
    session: Session,
    enrollment_id: int,
    discharged_at: datetime,
    catalog: Catalog,
    settings: Settings,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> dict[str, int]:
    """Re-plan from a new discharge time. Unsent messages move (or are cancelled if the new plan
    has no such occurrence); messages already sent or finished stay as they are."""
    enrollment = _changeable(session, enrollment_id, "reschedule")
    _check_no_twin(session, enrollment, discharged_at)
    timeline = catalog.get(enrollment.procedure)
    patient = enrollment.patient
    planned = plan(
        timeline, patient.timezone, discharged_at, enrollment.channel_list, settings.quiet_hours
    )
    by_key = {(m.step, m.occurrence, m.channel): m for m in planned}
    rows = session.scalars(select(Message).where(Message.enrollment_id == enrollment_id)).all()
    counts = {"moved": 0, "cancelled": 0, "added": 0, "kept": 0}
    open_status = (
        MessageStatus.PAUSED
        if enrollment.status == EnrollmentStatus.PAUSED
        else MessageStatus.PENDING
    )
    for row in rows:
        new = by_key.pop((row.step, row.occurrence, row.channel), None)
        if row.status not in (MessageStatus.PENDING, MessageStatus.PAUSED):
            counts["kept"] += 1
        elif new is None:
            row.status, row.updated_at = MessageStatus.CANCELLED, now
            counts["cancelled"] += 1
        else:
            row.due_at, row.planned_at, row.expires_at = new.due_at, new.planned_at, new.expires_at
            row.next_attempt_at, row.updated_at = new.due_at, now
            counts["moved"] += 1
    if by_key:
        added = [
            message_row(enrollment_id, m) | {"status": open_status.value} for m in by_key.values()
        ]
        session.execute(insert(Message), added)
        counts["added"] = len(added)
    detail = {
        "from": enrollment.discharged_at.isoformat(),
        "to": discharged_at.isoformat(),
        **counts,
    }
    enrollment.discharged_at, enrollment.updated_at = discharged_at, now
    record(session, EventKind.RESCHEDULED, actor, now, enrollment_id, reason=reason, detail=detail)
    return counts


def _check_no_twin(session: Session, enrollment: Enrollment, discharged_at: datetime) -> None:
    """One enrollment per patient, procedure and discharge time (the idempotency key)."""
    twin = session.scalar(
        select(Enrollment.id).where(
            Enrollment.patient_id == enrollment.patient_id,
            Enrollment.procedure == enrollment.procedure,
            Enrollment.discharged_at == discharged_at,
            Enrollment.id != enrollment.id,
        )
    )
    if twin is not None:
        raise InputError(
            "discharged_at",
            f"the patient already has enrollment {twin} for {enrollment.procedure} "
            "discharged at that time",
        )


def _changeable(session: Session, enrollment_id: int, action: str) -> Enrollment:
    enrollment = get_enrollment(session, enrollment_id)
    if enrollment.status in (EnrollmentStatus.CANCELLED, EnrollmentStatus.COMPLETED):
        raise AftercareError(
            f"id: cannot {action} enrollment {enrollment_id}: it is {enrollment.status}"
        )
    return enrollment


def _set_status(
    enrollment: Enrollment, status: EnrollmentStatus, reason: str | None, now: datetime
) -> None:
    enrollment.status = status
    enrollment.status_reason = reason
    enrollment.updated_at = now
    if status in (EnrollmentStatus.CANCELLED, EnrollmentStatus.COMPLETED):
        enrollment.active_key = None  # finished: the patient may be enrolled in it again


def _move(
    session: Session,
    enrollment_id: int,
    from_statuses: tuple[MessageStatus, ...],
    to_status: MessageStatus,
    now: datetime,
) -> int:
    statement = (
        update(Message)
        .where(Message.enrollment_id == enrollment_id, Message.status.in_(from_statuses))
        .values(status=to_status, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount  # type: ignore[attr-defined,no-any-return]
