"""Claiming due messages: the only place that decides which rows a dispatcher may send.

One short transaction expires what is too late, settles rows that must not go out (suppressed
address, paused or cancelled enrollment), and marks the rest ``sending`` with the claimer's id
and time, committed before any provider is called. On PostgreSQL the candidate rows are locked
with ``FOR UPDATE SKIP LOCKED`` so concurrent dispatchers take disjoint rows; on SQLite the whole
transaction is ``BEGIN IMMEDIATE``, so claims are serialised.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from aftercare.models import Enrollment, Message, Patient, Suppression
from aftercare.smscap import SmsCaps
from aftercare.statuses import ChannelName, EnrollmentStatus, EventKind, MessageStatus
from aftercare.store import events, smscaps
from aftercare.store.events import NewEvent


@dataclass(frozen=True)
class Claim:
    """A message a dispatcher now owns, with what it needs to render and address it."""

    id: int
    enrollment_id: int
    step: str
    occurrence: int
    channel: ChannelName
    due_at: datetime
    expires_at: datetime
    attempts: int  # including the attempt this claim is for
    procedure: str
    discharged_at: datetime
    patient_id: int
    first_name: str
    phone: str
    email: str | None
    timezone: str
    language: str
    # Reconciliation only: since when to look for provider records of earlier attempts (the
    # due time, or the previous claim if that was earlier; see _with_previous).
    previous_claim_at: datetime | None = None

    @property
    def address(self) -> str | None:
        return self.phone if self.channel == ChannelName.SMS else self.email


# Labelled as the fields of Claim, which is built from each row by name.
_CLAIM_COLUMNS = (
    Message.id,
    Message.enrollment_id,
    Message.step,
    Message.occurrence,
    Message.channel,
    Message.due_at,
    Message.expires_at,
    Message.attempts,
    Enrollment.procedure,
    Enrollment.discharged_at,
    Patient.id.label("patient_id"),
    Patient.first_name,
    Patient.phone,
    Patient.email,
    Patient.timezone,
    Patient.language,
)


def expire_overdue(session: Session, now: datetime, actor: str) -> int:
    """Pending messages past their expiry become ``expired`` (never sent late).

    A message is never scheduled past its expiry (retries that would land later expire instead),
    so ``next_attempt_at <= now`` holds for every expired one; saying so lets the query use the
    (status, next_attempt_at) index instead of scanning every pending row on each batch.
    """
    ids = session.scalars(
        _lock(
            session,
            select(Message.id).where(
                Message.status == MessageStatus.PENDING,
                Message.next_attempt_at <= now,
                Message.expires_at <= now,
            ),
        )
    ).all()
    set_status(session, ids, MessageStatus.EXPIRED, now)
    events.for_messages(
        session, ids, EventKind.EXPIRED, actor, now, "its time to be useful had passed"
    )
    return len(ids)


def claim_due(
    session: Session,
    channels: Collection[str],
    now: datetime,
    worker: str,
    limit: int,
    caps: SmsCaps | None = None,
) -> tuple[list[Claim], dict[str, int]]:
    """Claim up to ``limit`` due messages on ``channels``; returns the claims and the counts of
    rows settled without sending (``suppressed``, ``paused``, ``cancelled``, and with ``caps``
    ``capped``, or ``deferred`` to a later time)."""
    due = _lock(
        session,
        select(Message.id)
        .where(
            Message.status == MessageStatus.PENDING,
            Message.next_attempt_at <= now,
            Message.expires_at > now,
            Message.channel.in_(list(channels)),
        )
        # Only by due time, which the (status, next_attempt_at) index yields in order, so the
        # scan stops after ``limit`` rows. A tie-break on id would make PostgreSQL sort every
        # due row for every batch, and a backlog (an outage, a day's enrollments due at the
        # same local 09:00) is exactly when claims must stay cheap.
        .order_by(Message.next_attempt_at)
        .limit(limit),
    )
    ids = session.scalars(due).all()
    if not ids:
        return [], {}
    rows = _claim_rows(session, ids)
    settled = _settle_unsendable(session, rows, now, worker)
    sendable = [claim for claim, _ in rows if claim.id not in settled]
    held: dict[str, int] = {}
    if caps is not None:
        sendable, held = smscaps.hold_back(session, sendable, now, worker, caps)
    _mark_sending(session, [r.id for r in sendable], now, worker)
    _claimed_events(session, sendable, worker, now)
    counts: dict[str, int] = dict(held)
    for status in settled.values():
        counts[status] = counts.get(status, 0) + 1
    return sendable, counts


def claim_stale(
    session: Session,
    channels: Collection[str],
    now: datetime,
    worker: str,
    stale_before: datetime,
    limit: int,
) -> list[Claim]:
    """Take over ``sending`` rows whose claimer vanished (crashed mid-send) for reconciliation.

    Also ``worker``'s own: a dispatcher runs one pass at a time, so between passes none of its
    claims is in flight, and a row still ``sending`` under its name was left by a pass that
    failed: the connection dropped as the claim committed (the claimer never learnt it owned
    the rows) or recording gave up. Waiting out the lease would hold them back for nothing.
    """
    query = _lock(
        session,
        select(Message.id, Message.claimed_at)
        .where(
            Message.status == MessageStatus.SENDING,
            or_(Message.claimed_at < stale_before, Message.claimed_by == worker),
            Message.channel.in_(list(channels)),
        )
        .order_by(Message.claimed_at, Message.id)
        .limit(limit),
    )
    previous = dict(session.execute(query).all())
    if not previous:
        return []
    rows = _claim_rows(session, list(previous), extra_attempt=0)
    session.execute(
        update(Message)
        .where(Message.id.in_(list(previous)), Message.status == MessageStatus.SENDING)
        .values(claimed_by=worker, claimed_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    events.for_messages(
        session,
        list(previous),
        EventKind.RECONCILING,
        worker,
        now,
        "claim went stale (crash or kill)",
    )
    return [_with_previous(claim, previous[claim.id]) for claim, _ in rows]


def _with_previous(claim: Claim, previous: datetime | None) -> Claim:
    """Provider records are looked for since the message was due, not only since the previous
    claim: a reconciliation that crashed in its turn re-stamped ``claimed_at`` (the text went
    out under an older claim), and an earlier attempt that timed out may have reached the
    provider before this attempt was claimed. With the previous claim's time alone, a crash
    loop longer than the lookup's clock-skew allowance would miss the records and send again.
    Retries already look since the due time (dispatch)."""
    since = claim.due_at if previous is None else min(previous, claim.due_at)
    return Claim(**{**claim.__dict__, "previous_claim_at": since})


def _lock(session: Session, query: Any) -> Any:
    """Row locks that other dispatchers skip (PostgreSQL); SQLite's IMMEDIATE lock covers it."""
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=Message)
    return query


def _claim_rows(
    session: Session, ids: Sequence[int], extra_attempt: int = 1
) -> list[tuple[Claim, str]]:
    """The claims for ``ids``, each with its enrollment's status (re-checked before sending)."""
    query = (
        select(*_CLAIM_COLUMNS, Enrollment.status.label("enrollment_status"))
        .join(Enrollment, Message.enrollment_id == Enrollment.id)
        .join(Patient, Enrollment.patient_id == Patient.id)
        .where(Message.id.in_(list(ids)))
        .order_by(Message.next_attempt_at, Message.id)
    )
    rows = []
    for row in session.execute(query):
        fields = dict(row._mapping)
        enrollment_status = fields.pop("enrollment_status")
        fields["attempts"] += extra_attempt
        rows.append((Claim(**fields), enrollment_status))
    return rows


def _settle_unsendable(
    session: Session, rows: Sequence[tuple[Claim, str]], now: datetime, worker: str
) -> dict[int, str]:
    """Rows that must not be sent after all, re-checked at claim time -> their new status."""
    suppressed = _suppressed_addresses(session, [claim for claim, _ in rows])
    settled: dict[int, str] = {}
    for row, enrollment_status in rows:
        if enrollment_status == EnrollmentStatus.PAUSED:
            settled[row.id] = MessageStatus.PAUSED
        elif enrollment_status in (EnrollmentStatus.CANCELLED, EnrollmentStatus.COMPLETED):
            settled[row.id] = MessageStatus.CANCELLED
        elif row.address is None or (
            (row.channel, suppression_key(row.channel, row.address)) in suppressed
        ):
            settled[row.id] = MessageStatus.SUPPRESSED
    for status in set(settled.values()):
        ids = [i for i, s in settled.items() if s == status]
        set_status(session, ids, MessageStatus(status), now)
        events.for_messages(session, ids, EventKind(status), worker, now, _REASONS[status])
    return settled


_REASONS: dict[str, str] = {
    MessageStatus.PAUSED: "enrollment is paused",
    MessageStatus.CANCELLED: "enrollment is cancelled",
    MessageStatus.SUPPRESSED: "recipient opted out on this channel (or has no address)",
}


def suppression_key(channel: str, address: str) -> str:
    """How an address is kept and compared in the opt-out list: email addresses without letter
    case (mail systems deliver Ana@EXAMPLE.ORG and ana@example.org to the same inbox)."""
    return address.lower() if channel == ChannelName.EMAIL else address


def _suppressed_addresses(session: Session, rows: Sequence[Claim]) -> set[tuple[str, str]]:
    keys = {(r.channel, suppression_key(r.channel, r.address)) for r in rows if r.address}
    if not keys:
        return set()
    # Also the addresses as given: opt-outs recorded before keys were lower-cased.
    addresses = {key for _, key in keys} | {r.address for r in rows if r.address}
    query = select(Suppression.channel, Suppression.address).where(
        Suppression.address.in_(addresses)
    )
    return {(c, suppression_key(c, a)) for c, a in session.execute(query)}


def _mark_sending(session: Session, ids: Sequence[int], now: datetime, worker: str) -> None:
    # No "AND status = 'pending'" here: the rows are locked (FOR UPDATE / BEGIN IMMEDIATE) since
    # we read them, and with it SQLite plans the update through the status index, visiting
    # every pending row in the table instead of the few ids.
    if ids:
        session.execute(
            update(Message)
            .where(Message.id.in_(list(ids)))
            .values(
                status=MessageStatus.SENDING,
                claimed_by=worker,
                claimed_at=now,
                attempts=Message.attempts + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )


def _claimed_events(session: Session, claims: Sequence[Claim], worker: str, now: datetime) -> None:
    """The audit trail's "claimed": who took each message and when, before it was sent, from
    what the claim already holds (no read)."""
    claimed = [NewEvent(EventKind.CLAIMED, worker, c.enrollment_id, c.id) for c in claims]
    events.write(session, now, claimed)


def set_status(session: Session, ids: Sequence[int], status: MessageStatus, now: datetime) -> None:
    if ids:
        session.execute(
            update(Message)
            .where(Message.id.in_(list(ids)))
            .values(status=status, next_attempt_at=None, updated_at=now)
            .execution_options(synchronize_session=False)
        )


def next_due(session: Session, channels: Collection[str]) -> datetime | None:
    """When the next pending message on ``channels`` falls due (or its retry does)."""
    return session.scalar(
        select(func.min(Message.next_attempt_at)).where(
            Message.status == MessageStatus.PENDING, Message.channel.in_(list(channels))
        )
    )
