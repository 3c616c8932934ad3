"""Staff accounts, their sign-in throttles and the console's switches: every query of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from aftercare.models import ConsoleSetting, SigninThrottle, Staff


def add_staff(
    session: Session, email: str, name: str, role: str, password_hash: str, now: datetime
) -> Staff:
    staff = Staff(
        email=email,
        name=name,
        role=role,
        password_hash=password_hash,
        failed_signins=0,
        created_at=now,
    )
    session.add(staff)
    session.flush()
    return staff


def staff_by_email(session: Session, email: str) -> Staff | None:
    return session.scalar(select(Staff).where(Staff.email == email))


def staff_by_id(session: Session, staff_id: int) -> Staff | None:
    return session.get(Staff, staff_id)


def all_staff(session: Session) -> list[Staff]:
    return list(session.scalars(select(Staff).order_by(Staff.email)))


def staff_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Staff)) or 0


def set_password(session: Session, staff: Staff, password_hash: str) -> None:
    staff.password_hash = password_hash
    staff.failed_signins = 0
    staff.last_failed_signin_at = None


def set_disabled(session: Session, staff: Staff, at: datetime | None) -> None:
    staff.disabled_at = at


def set_role(session: Session, staff: Staff, role: str) -> None:
    staff.role = role


def set_totp_secret(
    session: Session, staff: Staff, secret: str | None, step: int | None = None
) -> None:
    staff.totp_secret = secret
    staff.totp_last_step = step


def set_totp_step(session: Session, staff: Staff, step: int) -> None:
    staff.totp_last_step = step


def record_failed_signin(session: Session, staff: Staff, now: datetime) -> None:
    staff.failed_signins += 1
    staff.last_failed_signin_at = now


def record_signin(session: Session, staff: Staff, now: datetime) -> None:
    staff.failed_signins = 0
    staff.last_failed_signin_at = None
    staff.last_signin_at = now


def address_throttle(session: Session, address: str) -> SigninThrottle | None:
    return session.get(SigninThrottle, address)


def record_address_failure(
    session: Session, address: str, now: datetime, forget_before: datetime
) -> SigninThrottle:
    """One more failure from ``address``; failures older than ``forget_before`` no longer count."""
    row = session.get(SigninThrottle, address, with_for_update=True)
    if row is None:
        row = SigninThrottle(address=address, failures=0, last_failure_at=now)
        session.add(row)
    elif row.last_failure_at < forget_before:
        row.failures = 0
    row.failures += 1
    row.last_failure_at = now
    session.flush()
    return row


def clear_address_failures(session: Session, address: str) -> None:
    row = session.get(SigninThrottle, address)
    if row is not None:
        session.delete(row)


def console_setting(session: Session, name: str) -> str | None:
    row = session.get(ConsoleSetting, name)
    return row.value if row else None


def set_console_setting(session: Session, name: str, value: str, actor: str, now: datetime) -> None:
    row = session.get(ConsoleSetting, name)
    if row is None:
        session.add(ConsoleSetting(name=name, value=value, updated_at=now, updated_by=actor))
        return
    row.value, row.updated_at, row.updated_by = value, now, actor
