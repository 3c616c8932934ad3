"""Console sign-ins (server-side sessions): every query of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aftercare.models import SignIn, Staff


def start_signin(
    session: Session, staff_id: int, token_hash: str, address: str | None, now: datetime
) -> SignIn:
    signin = SignIn(
        staff_id=staff_id,
        token_hash=token_hash,
        address=address,
        started_at=now,
        last_seen_at=now,
    )
    session.add(signin)
    session.flush()
    return signin


def open_signin(session: Session, token_hash: str) -> tuple[SignIn, Staff] | None:
    """The sign-in the token names, with its account, unless it has ended."""
    row = session.execute(
        select(SignIn, Staff)
        .join(Staff, Staff.id == SignIn.staff_id)
        .where(SignIn.token_hash == token_hash, SignIn.ended_at.is_(None))
    ).first()
    return (row[0], row[1]) if row else None


def touch_signin(session: Session, signin_id: int, now: datetime) -> None:
    session.execute(update(SignIn).where(SignIn.id == signin_id).values(last_seen_at=now))


def end_signin(session: Session, signin_id: int, now: datetime, reason: str) -> None:
    session.execute(
        update(SignIn)
        .where(SignIn.id == signin_id, SignIn.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )


def end_signins_of(session: Session, staff_id: int, now: datetime, reason: str) -> int:
    """Ends every open sign-in of one account (disabled, password reset); how many there were."""
    result = session.execute(
        update(SignIn)
        .where(SignIn.staff_id == staff_id, SignIn.ended_at.is_(None))
        .values(ended_at=now, end_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
