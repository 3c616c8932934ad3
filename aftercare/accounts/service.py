"""Managing staff accounts; the CLI (``aftercare staff``) and the console's staff page call these.

Every change is written to the event log with its actor. Emails are kept in lower case, so an
account is the same whoever types it how.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from aftercare.accounts import passwords
from aftercare.accounts.roles import parse_role
from aftercare.db import transaction
from aftercare.errors import InputError, NotFoundError
from aftercare.models import Staff
from aftercare.statuses import EventKind, StaffRole
from aftercare.store import signins as signin_store
from aftercare.store import staff as store
from aftercare.store.events import record
from aftercare.validation import parse_email

MAX_NAME = 100
# Event.actor holds 64 characters.
MAX_ACTOR = 64


@dataclass(frozen=True)
class StaffAccount:
    """An account as listings show it (never its password hash or TOTP secret)."""

    id: int
    email: str
    name: str
    role: str
    disabled: bool
    two_factor: bool
    last_signin_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, staff: Staff) -> StaffAccount:
        return cls(
            id=staff.id,
            email=staff.email,
            name=staff.name,
            role=staff.role,
            disabled=staff.disabled_at is not None,
            two_factor=staff.totp_secret is not None,
            last_signin_at=staff.last_signin_at,
            created_at=staff.created_at,
        )

    @property
    def actor(self) -> str:
        return actor_of(self.id, self.email)


def actor_of(staff_id: int, email: str) -> str:
    """``staff:ana@clinic.org#3``: the account's email and id, as the event log's actor. A long
    email is shortened, never the id, which is what identifies the account for good."""
    suffix = f"#{staff_id}"
    return f"staff:{email[: MAX_ACTOR - len('staff:') - len(suffix)]}{suffix}"


def parse_staff_email(raw: str) -> str:
    try:
        return parse_email(raw).lower()
    except ValueError as exc:
        raise InputError("email", str(exc)) from None


def parse_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise InputError("name", "is empty")
    if len(name) > MAX_NAME:
        raise InputError("name", f"is longer than {MAX_NAME} characters")
    if not name.isprintable() or "<" in name or ">" in name:
        raise InputError("name", "contains control characters or markup")
    return name


def add_staff(
    sessions: sessionmaker[Session],
    email: str,
    name: str,
    role: str,
    password: str,
    actor: str,
    now: datetime,
) -> StaffAccount:
    email = parse_staff_email(email)
    name, staff_role = parse_name(name), parse_role(role)
    password_hash = passwords.hash_password(passwords.check_new_password(password, email))
    with transaction(sessions) as session:
        if store.staff_by_email(session, email) is not None:
            raise InputError("email", f"{email} already has an account")
        staff = store.add_staff(session, email, name, staff_role, password_hash, now)
        record(session, EventKind.STAFF_ADDED, actor, now, detail=_about(staff))
        return StaffAccount.of(staff)


def list_staff(sessions: sessionmaker[Session]) -> list[StaffAccount]:
    with sessions() as session:
        return [StaffAccount.of(staff) for staff in store.all_staff(session)]


def get_staff(sessions: sessionmaker[Session], staff_id: int) -> StaffAccount:
    with sessions() as session:
        staff = store.staff_by_id(session, staff_id)
        if staff is None:
            raise NotFoundError(f"id: no staff account {staff_id}")
        return StaffAccount.of(staff)


def disable_staff(
    sessions: sessionmaker[Session], email: str, actor: str, now: datetime
) -> StaffAccount:
    """Disables the account and ends its sign-ins at once; its history stays."""
    with transaction(sessions) as session:
        staff = _existing(session, email)
        if staff.disabled_at is None:
            store.set_disabled(session, staff, now)
            signin_store.end_signins_of(session, staff.id, now, "disabled")
            record(session, EventKind.STAFF_DISABLED, actor, now, detail=_about(staff))
        return StaffAccount.of(staff)


def enable_staff(
    sessions: sessionmaker[Session], email: str, actor: str, now: datetime
) -> StaffAccount:
    with transaction(sessions) as session:
        staff = _existing(session, email)
        if staff.disabled_at is not None:
            store.set_disabled(session, staff, None)
            record(session, EventKind.STAFF_ENABLED, actor, now, detail=_about(staff))
        return StaffAccount.of(staff)


def reset_password(
    sessions: sessionmaker[Session], email: str, password: str, actor: str, now: datetime
) -> StaffAccount:
    """A new password; the account's sign-ins end and its failed sign-ins are forgiven."""
    email = parse_staff_email(email)
    password_hash = passwords.hash_password(passwords.check_new_password(password, email))
    with transaction(sessions) as session:
        staff = _existing(session, email)
        store.set_password(session, staff, password_hash)
        signin_store.end_signins_of(session, staff.id, now, "password reset")
        record(session, EventKind.PASSWORD_RESET, actor, now, detail=_about(staff))
        return StaffAccount.of(staff)


def ensure_first_admin(
    sessions: sessionmaker[Session], email: str, password: str, now: datetime
) -> StaffAccount | None:
    """The first admin, when there are no accounts at all; None when there already are."""
    with sessions() as session:
        if store.staff_count(session):
            return None
    return add_staff(sessions, email, "Administrator", StaffRole.ADMIN, password, "setup", now)


def _existing(session: Session, email: str) -> Staff:
    staff = store.staff_by_email(session, parse_staff_email(email))
    if staff is None:
        raise NotFoundError(f"email: no staff account {email.strip().lower()}")
    return staff


def _about(staff: Staff) -> dict[str, object]:
    """The event's detail: which account (staff emails are work addresses, not patient data)."""
    return {"staff_id": staff.id, "email": staff.email, "role": staff.role}
