"""Two-factor sign-in with an authenticator app (TOTP, RFC 6238), per account, and the admin's
switch that requires it of everyone."""

from __future__ import annotations

from datetime import datetime

import pyotp
from sqlalchemy.orm import Session, sessionmaker

from aftercare.accounts.service import actor_of
from aftercare.accounts.signin import REQUIRE_TWO_FACTOR, matching_step
from aftercare.db import transaction
from aftercare.errors import NotFoundError
from aftercare.statuses import EventKind
from aftercare.store import staff as store
from aftercare.store.events import record


def provisioning_uri(secret: str, email: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=f"aftercare {issuer}")


def account_email(sessions: sessionmaker[Session], staff_id: int) -> str:
    with sessions() as session:
        staff = store.staff_by_id(session, staff_id)
        if staff is None:
            raise NotFoundError(f"id: no staff account {staff_id}")
        return staff.email


def turn_on(
    sessions: sessionmaker[Session],
    staff_id: int,
    secret: str,
    code: str,
    actor: str | None,
    now: datetime,
) -> bool:
    """Keeps ``secret`` for the account once a code from the app proves it was scanned."""
    step = matching_step(secret, code, now)
    if step is None:
        return False
    with transaction(sessions) as session:
        staff = store.staff_by_id(session, staff_id)
        if staff is None:
            raise NotFoundError(f"id: no staff account {staff_id}")
        store.set_totp_secret(session, staff, secret, step)
        who = actor or actor_of(staff.id, staff.email)
        record(session, EventKind.TWO_FACTOR_ON, who, now, detail={"staff_id": staff.id})
    return True


def turn_off(sessions: sessionmaker[Session], staff_id: int, actor: str, now: datetime) -> None:
    with transaction(sessions) as session:
        staff = store.staff_by_id(session, staff_id)
        if staff is None:
            raise NotFoundError(f"id: no staff account {staff_id}")
        store.set_totp_secret(session, staff, None)
        record(session, EventKind.TWO_FACTOR_OFF, actor, now, detail={"staff_id": staff.id})


def required(sessions: sessionmaker[Session]) -> bool:
    with sessions() as session:
        return store.console_setting(session, REQUIRE_TWO_FACTOR) == "yes"


def set_required(sessions: sessionmaker[Session], on: bool, actor: str, now: datetime) -> None:
    with transaction(sessions) as session:
        store.set_console_setting(session, REQUIRE_TWO_FACTOR, "yes" if on else "no", actor, now)
        record(session, EventKind.TWO_FACTOR_REQUIRED, actor, now, detail={"required": on})
