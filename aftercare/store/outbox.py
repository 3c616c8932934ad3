"""Recording what happened to claimed messages, in one transaction per batch."""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, exists, select, update
from sqlalchemy.orm import Session

from aftercare.channels.base import ChannelError, Receipt
from aftercare.models import Enrollment, Message
from aftercare.retry import RetryPolicy, after_failure
from aftercare.statuses import (
    AlertKind,
    ChannelName,
    EnrollmentStatus,
    EventKind,
    MessageStatus,
)
from aftercare.store import alerts, events, receipts
from aftercare.store.claims import Claim
from aftercare.store.events import NewEvent
from aftercare.store.suppressions import suppress_address

log = logging.getLogger("aftercare.store.outbox")

_OPEN = (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.PAUSED)
_table = Message.__table__
assert isinstance(_table, Table)
# Only the claimer may record the outcome, and only once: a row someone else took over after
# our lease ran out is theirs now.
_RECORD = (
    update(_table)
    .where(
        _table.c.id == bindparam("b_id"),
        _table.c.status == MessageStatus.SENDING,
        _table.c.claimed_by == bindparam("b_worker"),
    )
    .values(
        status=bindparam("b_status"),
        provider_id=bindparam("b_provider_id"),
        sent_at=bindparam("b_sent_at"),
        next_attempt_at=bindparam("b_next_attempt_at"),
        error_code=bindparam("b_error_code"),
        error_message=bindparam("b_error_message"),
        updated_at=bindparam("b_now"),
    )
)


@dataclass(frozen=True)
class Result:
    """How one claimed message went: a receipt, an error, or expired before a re-send."""

    claim: Claim
    receipt: Receipt | None = None
    error: ChannelError | None = None
    reconciled: bool = False  # found at the provider after a crash; not sent again
    expired: bool = False


def record_results(
    session: Session,
    results: Sequence[Result],
    now: datetime,
    worker: str,
    policy: RetryPolicy,
    rng: random.Random,
) -> Counter[str]:
    rows: list[dict[str, Any]] = []
    outcomes: list[NewEvent] = []
    opt_outs: set[str] = set()
    for result in results:
        row, event = _outcome(result, now, worker, policy, rng)
        rows.append(row)
        outcomes.append(event)
        if result.error is not None and result.error.opt_out:
            opt_outs.add(result.claim.phone)
    if rows:
        session.execute(_RECORD, rows)
        events.write(session, now, outcomes)
        _open_failure_alerts(session, rows, worker, now)
    for phone in opt_outs:
        suppress_address(
            session, ChannelName.SMS, phone, "provider reports opt-out (21610)", "provider", now
        )
    # Twilio may have reported on a text before we knew its SID (see aftercare.store.receipts).
    texts = [
        r.claim.id for r in results if r.receipt is not None and r.claim.channel == ChannelName.SMS
    ]
    receipts.apply_parked(session, texts, now)
    _complete_finished(session, {r.claim.enrollment_id for r in results}, now)
    return Counter(str(row["b_status"]) for row in rows)


def still_claimed(session: Session, results: Sequence[Result], worker: str) -> list[Result]:
    """The results whose rows are still ``sending`` under ``worker``'s claim: not recorded yet.

    For a retry of :func:`record_results` after the connection dropped, perhaps after the
    server committed the first try; without it the retry would add the events a second time.
    """
    ids = [result.claim.id for result in results]
    if not ids:
        return []
    ours = set(
        session.scalars(
            select(Message.id).where(
                Message.id.in_(ids),
                Message.status == MessageStatus.SENDING,
                Message.claimed_by == worker,
            )
        )
    )
    return [result for result in results if result.claim.id in ours]


def _outcome(
    result: Result, now: datetime, worker: str, policy: RetryPolicy, rng: random.Random
) -> tuple[dict[str, Any], NewEvent]:
    claim = result.claim
    row: dict[str, Any] = {
        "b_id": claim.id,
        "b_worker": worker,
        "b_now": now,
        "b_provider_id": None,
        "b_sent_at": None,
        "b_next_attempt_at": None,
        "b_error_code": None,
        "b_error_message": None,
    }
    detail: dict[str, Any] = {"channel": claim.channel, "attempt": claim.attempts}

    def event(kind: EventKind, reason: str | None) -> NewEvent:
        return NewEvent(kind, worker, claim.enrollment_id, claim.id, reason, detail)

    if result.receipt is not None:
        row |= {
            "b_status": MessageStatus.SENT,
            "b_provider_id": result.receipt.provider_id,
            "b_sent_at": now,
        }
        found = "found at the provider after a crash" if result.reconciled else None
        return row, event(EventKind.SENT, found)
    if result.expired or result.error is None:
        row |= {"b_status": MessageStatus.EXPIRED}
        return row, event(EventKind.EXPIRED, "expired before it could be re-sent")
    error = result.error
    outcome = after_failure(error, claim.attempts, claim.expires_at, now, policy, rng)
    row |= {
        "b_status": outcome.status,
        "b_next_attempt_at": outcome.next_attempt_at,
        "b_error_code": error.code,
        "b_error_message": str(error)[:500],
    }
    kind = EventKind.RETRY if outcome.status == MessageStatus.PENDING else EventKind(outcome.status)
    if outcome.next_attempt_at is not None:
        detail["next_attempt_at"] = outcome.next_attempt_at.isoformat()
    return row, event(kind, f"{error.code or 'error'}: {error}"[:500])


def _open_failure_alerts(
    session: Session, rows: Sequence[dict[str, Any]], worker: str, now: datetime
) -> None:
    """A message that failed for good cannot reach the patient: it goes on the worklist. Only
    rows this batch did record as failed (another dispatcher may have taken one over)."""
    codes = {r["b_id"]: r["b_error_code"] for r in rows if r["b_status"] == MessageStatus.FAILED}
    if not codes:
        return
    failed = session.scalars(
        select(Message.id).where(
            Message.id.in_(list(codes)),
            Message.status == MessageStatus.FAILED,
            Message.claimed_by == worker,
        )
    )
    for message_id in failed:
        code = codes[message_id]
        reason = f"failed (error {code})" if code else "failed"
        cause = f"message:{message_id}"
        new = alerts.message_alert(AlertKind.DELIVERY_FAILURE, cause, session, message_id, reason)
        alerts.open_alert(session, new, worker, now)


def _complete_finished(session: Session, enrollment_ids: set[int], now: datetime) -> None:
    """An active enrollment with nothing left to send is completed."""
    if not enrollment_ids:
        return
    open_messages = exists().where(
        Message.enrollment_id == Enrollment.id, Message.status.in_(_OPEN)
    )
    session.execute(
        update(Enrollment)
        .where(
            Enrollment.id.in_(list(enrollment_ids)),
            Enrollment.status == EnrollmentStatus.ACTIVE,
            ~open_messages,
        )
        .values(status=EnrollmentStatus.COMPLETED, active_key=None, updated_at=now)
        .execution_options(synchronize_session=False)
    )
