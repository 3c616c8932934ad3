"""Holding back, at claim time, the texts that would break the per-number SMS cap.

Part of the claim transaction (:func:`aftercare.store.claims.claim_due`). A number's history is
every SMS to it (any patient, any enrollment) that was claimed in the last week and not refused
by the provider: ``sending`` ones count, so a text another dispatcher is sending right now counts.
On PostgreSQL, dispatchers claim disjoint rows (``SKIP LOCKED``) but two rows may go to one number;
a transaction-scoped advisory lock per number, taken in number order, makes the second claimer
wait for the first to commit and then see its row. SQLite's claims are serialised already.

A held-back text waits for the next allowed slot (``deferred``) if that comes before it expires,
else it is ``capped``: never sent, counted, and logged with the rule that stopped it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from aftercare.models import Enrollment, Message, Patient
from aftercare.planner import zone
from aftercare.smscap import WEEK_DAYS, SmsCaps, next_allowed
from aftercare.statuses import ChannelName, EventKind, MessageStatus
from aftercare.store import events
from aftercare.store.events import NewEvent


class Claimed(Protocol):
    """What the cap needs of a claim (an :class:`aftercare.store.claims.Claim`)."""

    @property
    def id(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def timezone(self) -> str: ...
    @property
    def expires_at(self) -> datetime: ...


C = TypeVar("C", bound=Claimed)

# Texts that reached (or may have reached) the provider; ``failed`` ones were refused by it.
_COUNTED = (
    MessageStatus.SENDING,
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
)
# One class of advisory locks among any others the database serves (the first lock key).
_LOCK_CLASS = 0x534D53  # "SMS"


def hold_back(
    session: Session, claims: Sequence[C], now: datetime, worker: str, caps: SmsCaps
) -> tuple[list[C], dict[str, int]]:
    """The claims that may be sent now, and how many others were ``deferred`` or ``capped``
    (those rows are updated and their events written here)."""
    texts = [c for c in claims if c.channel == ChannelName.SMS]
    if not caps.on or not texts:
        return list(claims), {}
    phones = sorted({c.phone for c in texts})
    _lock_numbers(session, phones)
    history = _history(session, phones, now - timedelta(days=WEEK_DAYS + 1))
    held: dict[int, tuple[datetime | None, str]] = {}
    for claim in texts:
        verdict = next_allowed(history.get(claim.phone, []), now, zone(claim.timezone), caps)
        if verdict.rule is None:
            history.setdefault(claim.phone, []).append(now)
        elif verdict.at < claim.expires_at:
            held[claim.id] = (verdict.at, verdict.rule)
        else:
            held[claim.id] = (None, verdict.rule)
    _record(session, held, now, worker)
    counts = {"deferred": sum(1 for at, _ in held.values() if at is not None)}
    counts[MessageStatus.CAPPED] = len(held) - counts["deferred"]
    return [c for c in claims if c.id not in held], {k: n for k, n in counts.items() if n}


def _lock_numbers(session: Session, phones: Sequence[str]) -> None:
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({_lock_key(phone) for phone in phones})
    # The subquery's order is the order the locks are taken: every claimer takes them in the
    # same order, so two never wait on each other in a cycle.
    session.execute(
        text(
            "SELECT pg_advisory_xact_lock(:class, k) "
            "FROM (SELECT unnest(CAST(:keys AS integer[])) AS k ORDER BY k) AS numbers"
        ),
        {"class": _LOCK_CLASS, "keys": keys},
    )


def _lock_key(phone: str) -> int:
    """A stable 32-bit key per number (two numbers sharing one only wait for each other)."""
    return int.from_bytes(hashlib.sha256(phone.encode()).digest()[:4], "big", signed=True)


def _history(session: Session, phones: Sequence[str], since: datetime) -> dict[str, list[datetime]]:
    # Patients first, then their messages: joined in one query, SQLite would walk every
    # recent message instead of the numbers' few.
    enrollment_phone = dict(
        session.execute(
            select(Enrollment.id, Patient.phone)
            .join(Patient, Enrollment.patient_id == Patient.id)
            .where(Patient.phone.in_(list(phones)))
        ).all()
    )
    query = select(Message.enrollment_id, Message.claimed_at).where(
        Message.enrollment_id.in_(list(enrollment_phone)),
        Message.channel == ChannelName.SMS,
        Message.status.in_(_COUNTED),
        Message.claimed_at >= since,
    )
    history: dict[str, list[datetime]] = {}
    for enrollment_id, claimed_at in session.execute(query):
        if claimed_at is not None:  # every counted row was claimed; the column allows NULL
            history.setdefault(enrollment_phone[enrollment_id], []).append(claimed_at)
    return history


def _record(
    session: Session, held: dict[int, tuple[datetime | None, str]], now: datetime, worker: str
) -> None:
    if not held:
        return
    for message_id, (until, _) in held.items():
        values = (
            {"next_attempt_at": until}
            if until is not None
            else {"status": MessageStatus.CAPPED, "next_attempt_at": None}
        )
        session.execute(
            update(Message)
            .where(Message.id == message_id)
            .values(updated_at=now, **values)
            .execution_options(synchronize_session=False)
        )
    enrollment_of = dict(
        session.execute(
            select(Message.id, Message.enrollment_id).where(Message.id.in_(list(held)))
        ).all()
    )
    events.write(
        session,
        now,
        [
            NewEvent(
                EventKind.DEFERRED if until is not None else EventKind.CAPPED,
                worker,
                enrollment_of[message_id],
                message_id,
                _reason(until, rule),
                {"until": until.isoformat()} if until is not None else None,
            )
            for message_id, (until, rule) in held.items()
        ],
    )


def _reason(until: datetime | None, rule: str) -> str:
    if until is None:
        return f"SMS cap: {rule}, and no allowed time before it expires"
    return f"SMS cap: {rule}; waits for the next allowed time"
