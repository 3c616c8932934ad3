"""Signing in and out of the console, and the server-side sign-ins that outlive one request.

The browser holds a random token; the server keeps its SHA-256 and decides, on every request,
whether the sign-in still stands: not signed out, not idle for longer than the idle timeout, not
older than the absolute lifetime, the account not disabled.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import pyotp
from sqlalchemy.orm import Session, sessionmaker

from aftercare.accounts import passwords, throttle
from aftercare.accounts.service import StaffAccount, actor_of, parse_staff_email
from aftercare.db import transaction
from aftercare.errors import InputError
from aftercare.models import Staff
from aftercare.statuses import EventKind
from aftercare.store import signins as store
from aftercare.store import staff as staff_store
from aftercare.store.events import record

WRONG = "Email or password is wrong."
WRONG_CODE = "That code is wrong or has expired; enter the one your app shows now."
DISABLED = "This account is disabled; ask an admin."
REQUIRE_TWO_FACTOR = "require_two_factor"
# A sign-in's last activity is written at most this often: one write a minute, not a request.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class Refused:
    """Sign-in refused; ``message`` says why, in words for the person at the screen."""

    message: str
    throttled: bool = False


@dataclass(frozen=True)
class PasswordChecked:
    """The password was right; ``second_factor`` says what comes next: "code" (enter the code
    from the app), "setup" (two-factor is required and this account has none yet) or None."""

    account: StaffAccount
    second_factor: str | None


@dataclass(frozen=True)
class Current:
    signin_id: int
    account: StaffAccount


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password(
    sessions: sessionmaker[Session], email: str, password: str, address: str, now: datetime
) -> PasswordChecked | Refused:
    try:
        email = parse_staff_email(email)
    except InputError:
        email = ""
    with transaction(sessions) as session:
        staff = staff_store.staff_by_email(session, email) if email else None
        refused = _throttled(session, staff, address, now)
        if refused:
            return refused
        if not passwords.verify_password(staff.password_hash if staff else None, password):
            return _failed(session, staff, address, now)
        assert staff is not None  # verify_password is False without a hash
        if staff.disabled_at is not None:
            return Refused(DISABLED)
        if passwords.needs_rehash(staff.password_hash):
            staff_store.set_password(session, staff, passwords.hash_password(password))
        return PasswordChecked(StaffAccount.of(staff), _second_factor(session, staff))


def check_code(
    sessions: sessionmaker[Session], staff_id: int, code: str, address: str, now: datetime
) -> StaffAccount | Refused:
    """The second step: the code from the account's authenticator app."""
    with transaction(sessions) as session:
        staff = staff_store.staff_by_id(session, staff_id)
        refused = _throttled(session, staff, address, now)
        if refused:
            return refused
        if staff is None or staff.disabled_at is not None or staff.totp_secret is None:
            return Refused(DISABLED)
        step = matching_step(staff.totp_secret, code, now)
        if step is None or (staff.totp_last_step is not None and step <= staff.totp_last_step):
            refused = _failed(session, staff, address, now)
            return refused if refused.throttled else Refused(WRONG_CODE)
        staff_store.set_totp_step(session, staff, step)
        return StaffAccount.of(staff)


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code ``code`` is, or None. One step either side is accepted: a
    phone's clock 30 s off, or a code typed as it changed."""
    digits = "".join(code.split())
    if not (digits.isdigit() and len(digits) == 6):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(now)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


def begin(sessions: sessionmaker[Session], staff_id: int, address: str, now: datetime) -> str:
    """A new sign-in for an account that has proved who it is; returns the browser's token."""
    token = secrets.token_urlsafe(32)
    with transaction(sessions) as session:
        staff = staff_store.staff_by_id(session, staff_id)
        assert staff is not None
        staff_store.record_signin(session, staff, now)
        staff_store.clear_address_failures(session, address)
        store.start_signin(session, staff.id, hash_token(token), address, now)
        record(session, EventKind.SIGNED_IN, actor_of(staff.id, staff.email), now)
    return token


def current(
    sessions: sessionmaker[Session],
    token: str,
    now: datetime,
    idle: timedelta,
    lifetime: timedelta,
    active: bool = True,
) -> Current | str:
    """The sign-in the token names, or why there is none ("signed out", "idle", "expired",
    "disabled"). An ``active`` request (a person, not a page refreshing itself) keeps it alive."""
    with transaction(sessions) as session:
        found = store.open_signin(session, hash_token(token))
        if found is None:
            return "signed out"
        signin, staff = found
        ended = _why_ended(signin.started_at, signin.last_seen_at, staff, now, idle, lifetime)
        if ended:
            store.end_signin(session, signin.id, now, ended)
            return ended
        if active and now - signin.last_seen_at >= TOUCH_EVERY:
            store.touch_signin(session, signin.id, now)
        return Current(signin.id, StaffAccount.of(staff))


def sign_out(sessions: sessionmaker[Session], token: str, now: datetime) -> None:
    with transaction(sessions) as session:
        found = store.open_signin(session, hash_token(token))
        if found is None:
            return
        signin, staff = found
        store.end_signin(session, signin.id, now, "signed out")
        record(session, EventKind.SIGNED_OUT, actor_of(staff.id, staff.email), now)


def _why_ended(
    started_at: datetime,
    last_seen_at: datetime,
    staff: Staff,
    now: datetime,
    idle: timedelta,
    lifetime: timedelta,
) -> str | None:
    if staff.disabled_at is not None:
        return "disabled"
    if now - started_at >= lifetime:
        return "expired"
    if now - last_seen_at >= idle:
        return "idle"
    return None


def _second_factor(session: Session, staff: Staff) -> str | None:
    if staff.totp_secret is not None:
        return "code"
    required = staff_store.console_setting(session, REQUIRE_TWO_FACTOR) == "yes"
    return "setup" if required else None


def _throttled(
    session: Session, staff: Staff | None, address: str, now: datetime
) -> Refused | None:
    waits = [timedelta(0)]
    if staff is not None:
        waits.append(throttle.wait_left(staff.failed_signins, staff.last_failed_signin_at, now))
    by_address = staff_store.address_throttle(session, address)
    if by_address is not None:
        waits.append(throttle.wait_left(by_address.failures, by_address.last_failure_at, now))
    wait = max(waits)
    if not wait:
        return None
    return Refused(
        "Too many failed sign-ins for this account or from this computer. "
        f"Try again in {throttle.describe_wait(wait)}.",
        throttled=True,
    )


def _failed(session: Session, staff: Staff | None, address: str, now: datetime) -> Refused:
    staff_store.record_address_failure(session, address, now, now - throttle.FORGET_AFTER)
    detail: dict[str, object] = {"address": address}
    if staff is not None:
        staff_store.record_failed_signin(session, staff, now)
        detail["failures"] = staff.failed_signins
    actor = actor_of(staff.id, staff.email) if staff else "anonymous"
    record(session, EventKind.SIGNIN_FAILED, actor, now, detail=detail)
    # The failure that starts a wait says so at once, not only the try after it.
    return _throttled(session, staff, address, now) or Refused(WRONG)
