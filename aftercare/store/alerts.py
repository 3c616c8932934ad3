"""Alerts in the database: opening one per cause, the worklist, acknowledging and resolving,
and claiming the steps of an urgent alert's escalation.

Opening is idempotent (``INSERT ... ON CONFLICT (cause) DO NOTHING``): the webhook delivered
twice, or two daemons noticing the same silence, open one alert. An escalation step is claimed
by a conditional UPDATE of the alert (its step count must still be the one the daemon read) and
a row with a unique (alert, step) key, in one transaction: of any number of daemons, one wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from aftercare.errors import InputError, NotFoundError
from aftercare.models import Alert, AlertEscalation, Enrollment, Message, Patient, Reply
from aftercare.statuses import (
    URGENT_ALERT_KINDS,
    AlertKind,
    AlertState,
    ChannelName,
    EnrollmentStatus,
    EventKind,
    MessageStatus,
    ReplyKind,
)
from aftercare.store.events import EventRow, of_kinds, record

NOTE_MAX = 2000  # characters of a staff note


@dataclass(frozen=True)
class NewAlert:
    kind: AlertKind
    cause: str  # what opened it, unique: "reply:12", "message:34", "no-answer:56"
    reason: str | None = None  # a few words, never the reply's text
    patient_id: int | None = None
    enrollment_id: int | None = None
    message_id: int | None = None
    reply_id: int | None = None


def open_alert(
    session: Session,
    new: NewAlert,
    actor: str,
    now: datetime,
    escalate_after: timedelta | None = None,
) -> int | None:
    """Open an alert for ``new.cause`` unless one exists; returns the new id, or None.

    Urgent kinds are due for escalation ``escalate_after`` from now (None: never escalated).
    """
    urgent = new.kind in URGENT_ALERT_KINDS
    values: dict[str, Any] = {
        "cause": new.cause,
        "kind": new.kind,
        "urgent": urgent,
        "state": AlertState.OPEN,
        "reason": new.reason[:200] if new.reason else None,
        "patient_id": new.patient_id,
        "enrollment_id": new.enrollment_id,
        "message_id": new.message_id,
        "reply_id": new.reply_id,
        "opened_at": now,
        "escalations": 0,
        "next_escalation_at": now + escalate_after if urgent and escalate_after else None,
    }
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(Alert)
        .values(values)
        .on_conflict_do_nothing(index_elements=["cause"])
        .returning(Alert.id)
    )
    alert_id: int | None = session.scalar(statement)
    if alert_id is None:
        return None
    detail = {"alert_id": alert_id, "kind": new.kind, "urgent": urgent}
    record(
        session,
        EventKind.ALERT_OPENED,
        actor,
        now,
        new.enrollment_id,
        new.message_id,
        reason=new.reason,
        detail=detail,
    )
    return alert_id


def message_alert(
    kind: AlertKind, cause: str, session: Session, message_id: int, reason: str | None
) -> NewAlert:
    """A :class:`NewAlert` about one message, with its enrollment and patient looked up."""
    row = session.execute(
        select(Message.enrollment_id, Enrollment.patient_id)
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .where(Message.id == message_id)
    ).one()
    return NewAlert(kind, cause, reason, row.patient_id, row.enrollment_id, message_id)


@dataclass(frozen=True)
class AlertRow:
    """An alert as the worklist, the patient page and ``aftercare alerts`` show it."""

    id: int
    kind: AlertKind
    state: AlertState
    urgent: bool
    reason: str | None
    patient_id: int | None
    first_name: str | None  # None: no patient (a number nobody has)
    enrollment_id: int | None
    message_id: int | None
    reply_id: int | None
    opened_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    acknowledge_note: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    resolve_note: str | None
    escalations: int
    next_escalation_at: datetime | None

    @property
    def time_to_acknowledge(self) -> timedelta | None:
        return None if self.acknowledged_at is None else self.acknowledged_at - self.opened_at

    @property
    def time_to_resolve(self) -> timedelta | None:
        return None if self.resolved_at is None else self.resolved_at - self.opened_at


_ROW = (
    Alert.id,
    Alert.kind,
    Alert.state,
    Alert.urgent,
    Alert.reason,
    Alert.patient_id,
    Patient.first_name,
    Alert.enrollment_id,
    Alert.message_id,
    Alert.reply_id,
    Alert.opened_at,
    Alert.acknowledged_at,
    Alert.acknowledged_by,
    Alert.acknowledge_note,
    Alert.resolved_at,
    Alert.resolved_by,
    Alert.resolve_note,
    Alert.escalations,
    Alert.next_escalation_at,
)


def open_alerts(
    session: Session,
    *,
    include_resolved: bool = False,
    enrollment_id: int | None = None,
    patient_id: int | None = None,
    limit: int | None = None,
) -> list[AlertRow]:
    """The worklist: open urgent alerts first, then open, then acknowledged (then resolved, with
    ``include_resolved``), newest first within each."""
    rank = case(
        (Alert.state == AlertState.RESOLVED, 3),
        (Alert.state == AlertState.ACKNOWLEDGED, 2),
        (Alert.urgent.is_(True), 0),
        else_=1,
    )
    query = (
        select(*_ROW)
        .outerjoin(Patient, Alert.patient_id == Patient.id)
        .order_by(rank, Alert.opened_at.desc(), Alert.id.desc())
    )
    if not include_resolved:
        query = query.where(Alert.state != AlertState.RESOLVED)
    if enrollment_id is not None:
        query = query.where(Alert.enrollment_id == enrollment_id)
    if patient_id is not None:
        query = query.where(Alert.patient_id == patient_id)
    if limit:
        query = query.limit(limit)
    return [AlertRow(**row._asdict()) for row in session.execute(query)]


def get(session: Session, alert_id: int) -> AlertRow:
    query = select(*_ROW).outerjoin(Patient, Alert.patient_id == Patient.id)
    row = session.execute(query.where(Alert.id == alert_id)).first()
    if row is None:
        raise NotFoundError(f"id: no alert {alert_id}")
    return AlertRow(**row._asdict())


def acknowledge(
    session: Session, alert_id: int, actor: str, now: datetime, note: str | None = None
) -> bool:
    """Someone is on it: escalation stops. False if it already was acknowledged (or resolved);
    nothing changes then."""
    alert = _locked(session, alert_id)
    if alert.state != AlertState.OPEN:
        return False
    alert.state, alert.acknowledged_at, alert.acknowledged_by = AlertState.ACKNOWLEDGED, now, actor
    alert.acknowledge_note = _note(note, required=False)
    alert.next_escalation_at = None
    _event(session, EventKind.ALERT_ACKNOWLEDGED, alert, actor, now, alert.acknowledge_note)
    return True


def resolve(session: Session, alert_id: int, actor: str, now: datetime, note: str) -> bool:
    """Dealt with, saying how. An open alert resolved at once counts as acknowledged then too.
    False if it already was resolved; nothing changes then."""
    cleaned = _note(note, required=True)
    alert = _locked(session, alert_id)
    if alert.state == AlertState.RESOLVED:
        return False
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by = now, actor
    alert.state, alert.resolved_at, alert.resolved_by = AlertState.RESOLVED, now, actor
    alert.resolve_note, alert.next_escalation_at = cleaned, None
    _event(session, EventKind.ALERT_RESOLVED, alert, actor, now, cleaned)
    return True


def _locked(session: Session, alert_id: int) -> Alert:
    alert = session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFoundError(f"id: no alert {alert_id}")
    return alert


def _note(note: str | None, required: bool) -> str | None:
    cleaned = " ".join((note or "").split())
    if not cleaned:
        if required:
            raise InputError("--note", "is empty: say how the alert was dealt with")
        return None
    if len(cleaned) > NOTE_MAX:
        raise InputError("--note", f"is longer than {NOTE_MAX} characters")
    return cleaned


def _event(
    session: Session, kind: EventKind, alert: Alert, actor: str, now: datetime, note: str | None
) -> None:
    detail = {"alert_id": alert.id, "kind": alert.kind, "seconds": _seconds(alert, now)}
    record(session, kind, actor, now, alert.enrollment_id, alert.message_id, note, detail)


def _seconds(alert: Alert, now: datetime) -> int:
    """Seconds from opening to now: the time to acknowledge or to resolve, in the event too."""
    return int((now - alert.opened_at).total_seconds())


def history(session: Session, alert_id: int) -> list[EventRow]:
    """The alert's events, oldest first: opened, each escalation step, acknowledged, resolved."""
    kinds = [k for k in EventKind if k.value.startswith("alert_")]
    return [e for e in of_kinds(session, kinds) if (e.detail or {}).get("alert_id") == alert_id]


# --- escalation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Escalation:
    """One claimed step: tell on-call about this alert now (no patient data in it)."""

    alert_id: int
    step: int
    kind: AlertKind
    opened_at: datetime
    enrollment_id: int | None


def due_escalations(session: Session, now: datetime, limit: int = 100) -> list[tuple[int, int]]:
    """(alert id, steps taken so far) of open urgent alerts due for escalation."""
    query = (
        select(Alert.id, Alert.escalations)
        .where(Alert.state == AlertState.OPEN, Alert.next_escalation_at <= now)
        .order_by(Alert.next_escalation_at, Alert.id)
        .limit(limit)
    )
    return [(row.id, row.escalations) for row in session.execute(query)]


def claim_escalation(
    session: Session,
    alert_id: int,
    seen: int,
    now: datetime,
    every: timedelta,
    worker: str,
) -> Escalation | None:
    """Take step ``seen + 1`` of the alert, or None if another daemon took it (or someone
    acknowledged it) since ``seen`` was read. The next step is due ``every`` from now."""
    step = seen + 1
    taken = session.execute(
        update(Alert)
        .where(
            Alert.id == alert_id,
            Alert.state == AlertState.OPEN,
            Alert.escalations == seen,
            Alert.next_escalation_at <= now,
        )
        .values(escalations=step, next_escalation_at=now + every)
        .returning(Alert.kind, Alert.opened_at, Alert.enrollment_id)
    ).first()
    if taken is None:
        return None
    session.add(AlertEscalation(alert_id=alert_id, step=step, at=now, claimed_by=worker))
    session.flush()  # the unique (alert, step) key: a second claim fails here, before sending
    return Escalation(alert_id, step, AlertKind(taken.kind), taken.opened_at, taken.enrollment_id)


def record_escalation(
    session: Session,
    escalation: Escalation,
    worker: str,
    now: datetime,
    sent_to: list[str],
    failures: list[str],
) -> None:
    """The step's outcome in the alert's history: which contacts were told, what failed."""
    detail = {
        "alert_id": escalation.alert_id,
        "step": escalation.step,
        "sent": sent_to,
        "failed": failures,
    }
    kind = EventKind.ALERT_ESCALATED if sent_to else EventKind.ALERT_ESCALATION_FAILED
    reason = "; ".join(failures) or None
    record(session, kind, worker, now, escalation.enrollment_id, None, reason, detail)


def escalation_steps(session: Session, alert_id: int) -> list[AlertEscalation]:
    query = select(AlertEscalation).where(AlertEscalation.alert_id == alert_id)
    return list(session.scalars(query.order_by(AlertEscalation.step)))


# --- silence -----------------------------------------------------------------------------------

# How far back a pass looks for unanswered check-ins: a daemon stopped for up to this long still
# notices the silences of that time, and older check-ins are not scanned on every pass.
NO_ANSWER_LOOKBACK = timedelta(days=7)


def open_no_answers(
    session: Session,
    procedure: str,
    step: str,
    within: timedelta,
    reason: str,
    actor: str,
    now: datetime,
) -> int:
    """Open a "no answer" alert for each text of ``step`` sent more than ``within`` ago that no
    pain score has answered since; returns how many were opened (each text at most once)."""
    answered = exists().where(
        Reply.enrollment_id == Message.enrollment_id,
        Reply.kind == ReplyKind.PAIN,
        Reply.received_at >= Message.sent_at,
    )
    alerted = exists().where(Alert.message_id == Message.id, Alert.kind == AlertKind.NO_ANSWER)
    silent = session.execute(
        select(Message.id, Message.enrollment_id, Enrollment.patient_id)
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .where(
            Enrollment.procedure == procedure,
            Enrollment.status != EnrollmentStatus.CANCELLED,
            Message.step == step,
            Message.channel == ChannelName.SMS,
            Message.status.in_([MessageStatus.SENT, MessageStatus.DELIVERED]),
            Message.sent_at <= now - within,
            Message.sent_at > now - within - NO_ANSWER_LOOKBACK,
            ~answered,
            ~alerted,
        )
    ).all()
    opened = 0
    for message_id, enrollment_id, patient_id in silent:
        new = NewAlert(
            AlertKind.NO_ANSWER,
            f"no-answer:{message_id}",
            reason,
            patient_id,
            enrollment_id,
            message_id,
        )
        opened += open_alert(session, new, actor, now) is not None
    return opened
